import { Alert, Button, Card, Group, Paper, SimpleGrid, Stack, Text, Textarea, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import type { Communication, Observation } from '@medplum/fhirtypes';
import { ResourceName } from '@medplum/react';
import { IconBellRinging, IconCalendarTime, IconDeviceWatch } from '@tabler/icons-react';
import { useCallback, useMemo, useState } from 'react';
import { useParams } from 'react-router';
import { useSession } from '../auth/session.tsx';
import { LiveIndicator } from '../components/LiveIndicator.tsx';
import { describeError, ErrorState, Loading } from '../components/LoadState.tsx';
import { ago, localTime, useNow } from '../components/TimeAgo.tsx';
import { alertTitle } from '../fhir/alerts.ts';
import { communicate, isKind } from '../fhir/care.ts';
import { mergeObservation } from '../fhir/panel.ts';
import { goalRange, usePatientRecord } from '../fhir/patient.ts';
import { monitoringPlan } from '../fhir/plan.ts';
import { formatValue, latestReadings, VITALS, type Reading } from '../fhir/vitals.ts';
import { useLive, type LiveChange } from '../live/useLive.ts';
import { TEXT } from '../theme.ts';

/** What a reading means, in words a patient uses. */
function describe(reading: Reading, target: { low?: number; high?: number } | undefined): { text: string; tone: 'ok' | 'watch' } {
  const [low, high] = [target?.low ?? reading.vital.normal[0], target?.high ?? reading.vital.normal[1]];
  if (reading.value < low) return { text: 'lower than your usual range', tone: 'watch' };
  if (reading.value > high) return { text: 'higher than your usual range', tone: 'watch' };
  return { text: 'within your usual range', tone: 'ok' };
}

/** The patient's own page: latest readings in plain language, alerts, reminders, messages, devices. */
export default function PortalPage() {
  const { id: asked } = useParams();
  const { medplum, session, fhirUser } = useSession();
  const id = asked ?? session.patient ?? '';
  const { record, setRecord, error, reload: load } = usePatientRecord(medplum, id);
  const [message, setMessage] = useState('');
  const [sending, setSending] = useState(false);
  const now = useNow();

  const onChanges = useCallback((changes: LiveChange[]) => {
    const resources = changes.flatMap((c) => (c.resource ? [c.resource] : []));
    setRecord((r) => r && {
      ...r,
      latest: resources.filter((x): x is Observation => x.resourceType === 'Observation').reduce(mergeObservation, r.latest),
      communications: resources.filter((x): x is Communication => x.resourceType === 'Communication')
        .reduce((all, c) => [c, ...all.filter((o) => o.id !== c.id)], r.communications),
    });
  }, []);
  const criteria = useMemo(() => [`Observation?patient=Patient/${id}`, `Communication?subject=Patient/${id}`], [id]);
  const live = useLive(medplum, criteria, onChanges);

  if (error !== undefined) return <ErrorState error={error} retry={load} />;
  if (!record) return <Loading label="Loading your readings…" />;
  const readings = latestReadings(record.latest);
  const active = record.flags.filter((f) => f.status === 'active');
  const plan = monitoringPlan(record.carePlans);
  const messages = record.communications.filter((c) => isKind(c, 'message') || (c.category === undefined && c.sender?.reference === fhirUser));
  const reminders = record.communications.filter((c) => c.recipient?.some((r) => r.reference === `Patient/${id}`) && !isKind(c, 'message')).slice(0, 3);

  const send = async () => {
    setSending(true);
    try {
      const sent = await communicate(medplum, {
        kind: 'message', patientId: id, sender: fhirUser, text: message,
        recipients: record.teams.flatMap((t) => t.participant ?? []).map((p) => p.member).filter((m) => m !== undefined),
      });
      setRecord((r) => r && { ...r, communications: [sent, ...r.communications] });
      setMessage('');
      notifications.show({ color: 'teal', message: 'Sent to your care team' });
    } catch (err) {
      notifications.show({ color: 'red', title: 'Not sent', message: describeError(err) });
    } finally {
      setSending(false);
    }
  };

  return (
    <Stack gap="md" maw={1000}>
      <Group justify="space-between">
        <Title order={1} size="h2">Hello, {record.patient.name?.[0]?.given?.[0] ?? 'there'}</Title>
        <LiveIndicator state={live} />
      </Group>
      {active.length > 0 && (
        <Alert color="orange" icon={<IconBellRinging aria-hidden />} title="Your care team has been notified" role="status">
          {active.map((f) => <Text key={f.id} size="sm">{alertTitle(f)} (since {localTime(f.period?.start ?? '')})</Text>)}
          <Text size="sm" mt={4}>They will contact you if needed. If you feel unwell, call your care team or emergency services.</Text>
        </Alert>
      )}
      <section aria-labelledby="readings-heading">
        <Title order={2} size="h4" id="readings-heading" mb="xs">Your latest readings</Title>
        <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }} spacing="sm">
          {VITALS.map((vital) => {
            const reading = readings.get(vital.key);
            if (!reading) return null;
            const meaning = describe(reading, goalRange(record.goals, vital.codes[0]));
            return (
              <Card key={vital.key} withBorder padding="sm" component="article" aria-label={vital.plain}>
                <Text size="sm" c="dimmed">{vital.plain}</Text>
                <Text size="xl" fw={700}>{formatValue(vital, reading.value)} <Text span size="sm" c="dimmed">{vital.unit}</Text></Text>
                <Text size="sm" c={meaning.tone === 'ok' ? TEXT.ok : TEXT.warn}>{meaning.text}</Text>
                <Text size="xs" c="dimmed"><time dateTime={reading.at} title={localTime(reading.at)}>{ago(reading.at, now)}</time></Text>
              </Card>
            );
          })}
          {readings.size === 0 && <Text c="dimmed">No readings yet. They appear here as soon as your device sends them.</Text>}
        </SimpleGrid>
      </section>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
        <Paper withBorder p="sm" component="section" aria-labelledby="schedule-heading">
          <Group gap={6}><IconCalendarTime size={18} aria-hidden /><Title order={2} size="h5" id="schedule-heading">Your measurements</Title></Group>
          {plan?.status === 'active' && plan.activity?.length
            ? plan.activity.map((a, i) => <Text size="sm" key={i}>{a.detail?.description}</Text>)
            : <Text size="sm" c="dimmed">No scheduled measurements.</Text>}
          {reminders.map((c) => <Text size="sm" c={TEXT.warn} key={c.id}>Reminder: {c.payload?.[0]?.contentString}</Text>)}
        </Paper>
        <Paper withBorder p="sm" component="section" aria-labelledby="devices-heading">
          <Group gap={6}><IconDeviceWatch size={18} aria-hidden /><Title order={2} size="h5" id="devices-heading">Your devices</Title></Group>
          {record.devices.length === 0 && <Text size="sm" c="dimmed">No device connected.</Text>}
          {record.devices.map((d) => {
            const seen = [...readings.values()].filter((r) => r.device === `Device/${d.id}`).map((r) => r.at).sort().at(-1);
            return <Text size="sm" key={d.id}>{d.deviceName?.[0]?.name ?? 'Device'}: last synced {ago(seen, now)}</Text>;
          })}
        </Paper>
      </SimpleGrid>
      <Paper withBorder p="sm" component="section" aria-labelledby="messages-heading">
        <Title order={2} size="h5" id="messages-heading" mb="xs">Messages with your care team</Title>
        <Stack gap={6} mb="sm">
          {messages.length === 0 && <Text size="sm" c="dimmed">No messages yet.</Text>}
          {messages.slice(0, 20).map((c) => (
            <div key={c.id}>
              <Text size="xs" c="dimmed">{c.sender?.reference === fhirUser ? 'You' : <ResourceName value={c.sender} />} · {c.sent && localTime(c.sent)}</Text>
              <Text size="sm">{c.payload?.[0]?.contentString}</Text>
            </div>
          ))}
        </Stack>
        <Textarea label="Write to your care team" autosize minRows={2} value={message} onChange={(e) => setMessage(e.currentTarget.value)} />
        <Button mt="xs" onClick={() => void send()} disabled={!message.trim() || record.teams.length === 0} loading={sending}>Send</Button>
      </Paper>
    </Stack>
  );
}
