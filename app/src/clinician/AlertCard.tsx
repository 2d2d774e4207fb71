import { Badge, Button, Card, Group, Menu, Stack, Text, Textarea } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import type { Flag } from '@medplum/fhirtypes';
import { ResourceName } from '@medplum/react';
import { IconBellOff, IconCheck, IconChevronDown, IconMessage, IconNote } from '@tabler/icons-react';
import { useState } from 'react';
import { Link } from 'react-router';
import { useSession } from '../auth/session.tsx';
import { describeError } from '../components/LoadState.tsx';
import { ago, localTime } from '../components/TimeAgo.tsx';
import { acknowledgement, alertTitle, flagPriority, isSnoozed, patientIdOf, PRIORITY_COLOR, PRIORITY_LABEL, snoozedUntil } from '../fhir/alerts.ts';
import { acknowledge, communicate, snooze } from '../fhir/care.ts';
import { TEXT } from '../theme.ts';

interface Props {
  flag: Flag;
  now: number;
  /** Shows the patient's name (the inbox; not needed on the patient's own chart). */
  showPatient?: boolean;
  onChanged(flag: Flag): void;
}

type Composer = 'note' | 'message' | undefined;

/** One alert with what a clinician does about it: acknowledge, snooze, note, message the patient. */
export function AlertCard({ flag, now, showPatient, onChanged }: Props) {
  const { medplum, fhirUser } = useSession();
  const [busy, setBusy] = useState(false);
  const [composer, setComposer] = useState<Composer>();
  const [text, setText] = useState('');
  const priority = flagPriority(flag);
  const patientId = patientIdOf(flag.subject?.reference) ?? '';
  const active = flag.status === 'active';
  const ack = acknowledgement(flag);

  const run = async (label: string, action: () => Promise<Flag | void>): Promise<void> => {
    setBusy(true);
    try {
      const changed = await action();
      if (changed) onChanged(changed);
      notifications.show({ color: 'teal', message: label });
    } catch (err) {
      notifications.show({ color: 'red', title: 'Not saved', message: describeError(err) });
    } finally {
      setBusy(false);
    }
  };

  const send = () => run(composer === 'note' ? 'Note added' : 'Message sent to the patient', async () => {
    await communicate(medplum, {
      kind: composer === 'note' ? 'note' : 'message',
      patientId,
      sender: fhirUser,
      text,
      about: [{ reference: `Flag/${flag.id}` }],
      ...(composer === 'message' ? { recipients: [{ reference: `Patient/${patientId}` }] } : {}),
    });
    setComposer(undefined);
    setText('');
  });

  return (
    <Card withBorder padding="sm" component="article" aria-label={`${PRIORITY_LABEL[priority]} alert: ${alertTitle(flag)}`} data-flag={flag.id}>
      <Group justify="space-between" align="flex-start" wrap="nowrap">
        <Stack gap={2}>
          <Group gap="xs">
            <Badge color={PRIORITY_COLOR[priority]} variant={active ? 'filled' : 'default'} autoContrast>{PRIORITY_LABEL[priority]}</Badge>
            <Text fw={600}>{alertTitle(flag)}</Text>
          </Group>
          {showPatient && (
            <Text size="sm" component={Link} to={`/patients/${patientId}`} c={TEXT.link}>
              <ResourceName value={flag.subject} />
            </Text>
          )}
          <Text size="xs" c="dimmed">
            Raised {flag.period?.start ? <time dateTime={flag.period.start} title={localTime(flag.period.start)}>{ago(flag.period.start, now)}</time> : 'at an unknown time'}
            {isSnoozed(flag, now) && ` · snoozed until ${new Date(snoozedUntil(flag) as string).toLocaleTimeString()}`}
            {!active && flag.period?.end && ` · ended ${ago(flag.period.end, now)}`}
          </Text>
          {ack?.by && (
            <Text size="xs" c="dimmed">Acknowledged by <ResourceName value={{ reference: ack.by }} />{ack.at && ` at ${localTime(ack.at)}`}</Text>
          )}
        </Stack>
        {active && (
          <Group gap={6} wrap="nowrap">
            <Button size="xs" leftSection={<IconCheck size={14} aria-hidden />} loading={busy} onClick={() => run('Alert acknowledged', () => acknowledge(medplum, flag))}>
              Acknowledge
            </Button>
            <Menu position="bottom-end">
              <Menu.Target>
                <Button size="xs" variant="default" rightSection={<IconChevronDown size={14} aria-hidden />} disabled={busy}>More</Button>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Label>Snooze</Menu.Label>
                {[30, 60, 240].map((m) => (
                  <Menu.Item key={m} leftSection={<IconBellOff size={14} aria-hidden />} onClick={() => void run(`Snoozed for ${m < 60 ? `${m} min` : `${m / 60} h`}`, () => snooze(medplum, flag, m))}>
                    {m < 60 ? `${m} minutes` : `${m / 60} hour${m > 60 ? 's' : ''}`}
                  </Menu.Item>
                ))}
                <Menu.Divider />
                <Menu.Item leftSection={<IconNote size={14} aria-hidden />} onClick={() => setComposer('note')}>Add a note</Menu.Item>
                <Menu.Item leftSection={<IconMessage size={14} aria-hidden />} onClick={() => setComposer('message')}>Message the patient</Menu.Item>
              </Menu.Dropdown>
            </Menu>
          </Group>
        )}
      </Group>
      {composer && (
        <Stack gap="xs" mt="sm">
          <Textarea
            label={composer === 'note' ? 'Note on this alert' : 'Message to the patient'}
            autosize
            minRows={2}
            value={text}
            onChange={(e) => setText(e.currentTarget.value)}
            data-autofocus
          />
          <Group gap="xs">
            <Button size="xs" onClick={() => void send()} disabled={!text.trim()} loading={busy}>{composer === 'note' ? 'Save note' : 'Send'}</Button>
            <Button size="xs" variant="subtle" onClick={() => setComposer(undefined)}>Cancel</Button>
          </Group>
        </Stack>
      )}
    </Card>
  );
}
