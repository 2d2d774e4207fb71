import { ActionIcon, Badge, Button, Group, NumberInput, Paper, Select, Stack, Switch, Table, Text, TextInput, Title, VisuallyHidden } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import type { CarePlan, Goal, Practitioner } from '@medplum/fhirtypes';
import { ResourceName } from '@medplum/react';
import { IconArrowLeft, IconTrash } from '@tabler/icons-react';
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router';
import { useSession } from '../auth/session.tsx';
import { describeError, ErrorState, Loading } from '../components/LoadState.tsx';
import { loadPatientRecord, type PatientRecord } from '../fhir/patient.ts';
import { addTeamMember, endTarget, enrolDevice, monitoringPlan, removeTeamMember, scheduleActivity, setMonitoring, setTarget, unbindDevice } from '../fhir/plan.ts';
import { LOINC, VITAL_BY_KEY, VITALS } from '../fhir/vitals.ts';
import { TEXT } from '../theme.ts';

const TARGETABLE = VITALS.filter((v) => v.key !== 'weight');
const vitalOptions = (list = VITALS) => list.map((v) => ({ value: v.key, label: v.label }));

/** The monitoring plan: targets (Goals), measurement schedule (CarePlan), devices, care team. */
export default function PlanPage() {
  const { id = '' } = useParams();
  const { medplum } = useSession();
  const [record, setRecord] = useState<PatientRecord>();
  const [error, setError] = useState<unknown>();
  const [practitioners, setPractitioners] = useState<Practitioner[]>([]);

  const load = useCallback(() => {
    setError(undefined);
    loadPatientRecord(medplum, id).then(setRecord, setError);
    medplum.searchResources('Practitioner', { _count: 200 }).then((p) => setPractitioners([...p]), () => setPractitioners([]));
  }, [medplum, id]);
  useEffect(load, [load]);

  /** Runs a change, says so, and reloads the plan from the server. */
  const save = async (message: string, action: () => Promise<unknown>): Promise<void> => {
    try {
      await action();
      notifications.show({ color: 'teal', message });
      setRecord(await loadPatientRecord(medplum, id));
    } catch (err) {
      notifications.show({ color: 'red', title: 'Not saved', message: describeError(err) });
    }
  };

  if (error !== undefined) return <ErrorState error={error} retry={load} />;
  if (!record) return <Loading label="Loading the monitoring plan…" />;
  const plan = monitoringPlan(record.carePlans);
  const monitoring = plan?.status === 'active';
  const team = record.teams[0];

  return (
    <Stack gap="md" maw={960}>
      <Group justify="space-between">
        <div>
          <Button component={Link} to={`/patients/${id}`} variant="subtle" size="xs" leftSection={<IconArrowLeft size={14} aria-hidden />}>Back to the chart</Button>
          <Title order={1} size="h2">Monitoring plan: <ResourceName value={{ reference: `Patient/${id}` }} /></Title>
        </div>
        <Switch
          size="md"
          label={monitoring ? 'Monitoring on' : 'Monitoring off'}
          checked={monitoring}
          onChange={(e) => void save(e.currentTarget.checked ? 'Monitoring started' : 'Monitoring stopped', () => setMonitoring(medplum, id, plan, e.currentTarget.checked))}
        />
      </Group>

      <Paper withBorder p="md" component="section" aria-labelledby="targets-heading">
        <Title order={2} size="h4" id="targets-heading">Personal targets</Title>
        <Text size="sm" c="dimmed" mb="sm">Alerts use these ranges instead of the defaults. An SpO₂ target of 88–92 % switches NEWS2 to scale 2.</Text>
        <TargetsTable goals={record.goals} onEnd={(g) => save('Target removed', () => endTarget(medplum, g))} />
        <TargetForm onSave={(key, low, high) => save('Target saved', () => {
          const vital = VITAL_BY_KEY.get(key)!;
          const existing = record.goals.find((g) => g.target?.some((t) => t.measure?.coding?.some((c) => c.system === LOINC && c.code === vital.codes[0])));
          return setTarget(medplum, id, vital, low, high, existing);
        })} />
      </Paper>

      <Paper withBorder p="md" component="section" aria-labelledby="schedule-heading">
        <Title order={2} size="h4" id="schedule-heading">Measurement schedule</Title>
        <Text size="sm" c="dimmed" mb="sm">The patient is reminded when a scheduled measurement is missed; the team hears of repeated misses.</Text>
        <Schedule plan={plan} onChange={(activity) => save('Schedule saved', async () => {
          const current = plan ?? await setMonitoring(medplum, id, undefined, true);
          return medplum.updateResource<CarePlan>({ ...current, activity });
        })} />
      </Paper>

      <Paper withBorder p="md" component="section" aria-labelledby="devices-heading">
        <Title order={2} size="h4" id="devices-heading">Devices</Title>
        <Stack gap={4} my="sm">
          {record.devices.length === 0 && <Text size="sm" c="dimmed">No device enrolled.</Text>}
          {record.devices.map((d) => (
            <Group key={d.id} justify="space-between">
              <Text size="sm">{d.deviceName?.[0]?.name ?? 'Device'} · {d.identifier?.map((i) => i.value).join(', ')} <Badge size="xs" variant="default">{d.status}</Badge></Text>
              <Button size="xs" variant="subtle" color="red" c={TEXT.danger} onClick={() => void save('Device unbound', () => unbindDevice(medplum, d))}>Unbind</Button>
            </Group>
          ))}
        </Stack>
        <EnrolForm onEnrol={(identifier, name) => save('Device enrolled', () => enrolDevice(medplum, id, identifier, name))} />
      </Paper>

      <Paper withBorder p="md" component="section" aria-labelledby="team-heading">
        <Title order={2} size="h4" id="team-heading">Care team</Title>
        <Stack gap={4} my="sm">
          {(team?.participant ?? []).map((p) => (
            <Group key={p.member?.reference} justify="space-between">
              <Text size="sm"><ResourceName value={p.member} /></Text>
              <ActionIcon variant="subtle" color="red" c={TEXT.danger} aria-label="Remove from the care team" onClick={() => void save('Removed from the team', () => removeTeamMember(medplum, team!, p.member?.reference ?? ''))}>
                <IconTrash size={16} aria-hidden />
              </ActionIcon>
            </Group>
          ))}
        </Stack>
        <Select
          label="Add a team member"
          placeholder="Choose a practitioner"
          searchable
          data={practitioners.map((p) => ({ value: `Practitioner/${p.id}`, label: p.name?.[0] ? [p.name[0].prefix, p.name[0].given, p.name[0].family].flat().filter(Boolean).join(' ') : `Practitioner/${p.id}` }))}
          value={null}
          onChange={(member) => member && void save('Added to the team', () => addTeamMember(medplum, id, team, member))}
        />
      </Paper>
    </Stack>
  );
}

function TargetsTable({ goals, onEnd }: { goals: Goal[]; onEnd(goal: Goal): void }) {
  if (!goals.length) return <Text size="sm" c="dimmed">No personal targets: default limits apply.</Text>;
  return (
    <Table>
      <Table.Thead><Table.Tr><Table.Th>Measure</Table.Th><Table.Th>Low</Table.Th><Table.Th>High</Table.Th><Table.Th><VisuallyHidden>Actions</VisuallyHidden></Table.Th></Table.Tr></Table.Thead>
      <Table.Tbody>
        {goals.map((g) => g.target?.map((t, i) => (
          <Table.Tr key={`${g.id}-${i}`}>
            <Table.Td>{t.measure?.coding?.[0]?.display ?? t.measure?.coding?.[0]?.code}</Table.Td>
            <Table.Td>{t.detailRange?.low?.value ?? '—'} {t.detailRange?.low?.unit}</Table.Td>
            <Table.Td>{t.detailRange?.high?.value ?? '—'} {t.detailRange?.high?.unit}</Table.Td>
            <Table.Td><Button size="xs" variant="subtle" color="red" c={TEXT.danger} onClick={() => onEnd(g)}>Remove</Button></Table.Td>
          </Table.Tr>
        )))}
      </Table.Tbody>
    </Table>
  );
}

function TargetForm({ onSave }: { onSave(key: string, low: number | undefined, high: number | undefined): Promise<void> }) {
  const [key, setKey] = useState<string | null>('spo2');
  const [low, setLow] = useState<number | string>('');
  const [high, setHigh] = useState<number | string>('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!key) return;
    void onSave(key, low === '' ? undefined : Number(low), high === '' ? undefined : Number(high)).then(() => { setLow(''); setHigh(''); });
  };
  return (
    <form onSubmit={submit} aria-label="Set a target">
      <Group align="flex-end" gap="sm" mt="sm">
        <Select label="Measure" data={vitalOptions(TARGETABLE)} value={key} onChange={setKey} allowDeselect={false} />
        <NumberInput label="Low" value={low} onChange={setLow} w={100} decimalScale={1} />
        <NumberInput label="High" value={high} onChange={setHigh} w={100} decimalScale={1} />
        <Button type="submit" disabled={low === '' && high === ''}>Save target</Button>
      </Group>
    </form>
  );
}

function Schedule({ plan, onChange }: { plan: CarePlan | undefined; onChange(activity: CarePlan['activity']): Promise<void> }) {
  const [key, setKey] = useState<string | null>('systolic');
  const [times, setTimes] = useState<number | string>(2);
  const activities = plan?.activity ?? [];
  return (
    <Stack gap="sm">
      {activities.length === 0 && <Text size="sm" c="dimmed">No scheduled measurements.</Text>}
      {activities.map((a, i) => (
        <Group key={i} justify="space-between">
          <Text size="sm">{a.detail?.description ?? a.detail?.code?.coding?.[0]?.display}</Text>
          <Button size="xs" variant="subtle" color="red" c={TEXT.danger} onClick={() => void onChange(activities.filter((_, j) => j !== i))}>Remove</Button>
        </Group>
      ))}
      <form aria-label="Schedule a measurement" onSubmit={(e) => {
        e.preventDefault();
        const vital = key ? VITAL_BY_KEY.get(key) : undefined;
        if (vital && Number(times) > 0) void onChange([...activities, scheduleActivity(vital, Number(times))]);
      }}>
        <Group align="flex-end" gap="sm">
          <Select label="Measurement" data={vitalOptions(VITALS.filter((v) => v.key !== 'diastolic'))} value={key} onChange={setKey} allowDeselect={false} />
          <NumberInput label="Times a day" value={times} onChange={setTimes} min={1} max={24} w={120} />
          <Button type="submit">Add to schedule</Button>
        </Group>
      </form>
    </Stack>
  );
}

function EnrolForm({ onEnrol }: { onEnrol(identifier: string, name: string): Promise<void> }) {
  const [identifier, setIdentifier] = useState('');
  const [name, setName] = useState('');
  return (
    <form aria-label="Enrol a device" onSubmit={(e) => {
      e.preventDefault();
      if (identifier.trim()) void onEnrol(identifier.trim(), name.trim()).then(() => { setIdentifier(''); setName(''); });
    }}>
      <Group align="flex-end" gap="sm">
        <TextInput label="Device identifier" description="Serial number or device id" value={identifier} onChange={(e) => setIdentifier(e.currentTarget.value)} required />
        <TextInput label="Name (optional)" value={name} onChange={(e) => setName(e.currentTarget.value)} />
        <Button type="submit">Enrol</Button>
      </Group>
    </form>
  );
}
