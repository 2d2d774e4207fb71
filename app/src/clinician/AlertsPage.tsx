import { Group, SegmentedControl, Stack, Text, Title } from '@mantine/core';
import type { Flag } from '@medplum/fhirtypes';
import { useCallback, useEffect, useMemo, useState } from 'react';
import { useSession } from '../auth/session.tsx';
import { LiveIndicator } from '../components/LiveIndicator.tsx';
import { ErrorState, Loading } from '../components/LoadState.tsx';
import { useNow } from '../components/TimeAgo.tsx';
import { byUrgency, flagPriority, OPEN_ALERTS, PRIORITY_LABEL, PRIORITY_RANK, type Priority } from '../fhir/alerts.ts';
import { mergeFlag } from '../fhir/panel.ts';
import { useLive, type LiveChange } from '../live/useLive.ts';
import { AlertCard } from './AlertCard.tsx';

const LIVE_CRITERIA = ['Flag'];
const LEVELS: Priority[] = ['stat', 'asap', 'urgent', 'routine'];

/** Every active alert of the clinician's patients, by severity, the longest-waiting first. */
export default function AlertsPage() {
  const { medplum } = useSession();
  const [flags, setFlags] = useState<Flag[]>();
  const [error, setError] = useState<unknown>();
  const [level, setLevel] = useState<'all' | 'urgent'>('all');
  const now = useNow();

  const load = useCallback(() => {
    setError(undefined);
    medplum.searchResources('Flag', { ...OPEN_ALERTS, _count: 1000 }, { cache: 'no-cache' }).then((r) => setFlags([...r]), setError);
  }, [medplum]);
  useEffect(load, [load]);
  const onChanges = useCallback((changes: LiveChange[]) => {
    setFlags((current) => current && changes.reduce((flags, { resource }) => (resource?.resourceType === 'Flag' ? mergeFlag(flags, resource) : flags), current));
  }, []);
  const live = useLive(medplum, LIVE_CRITERIA, onChanges);
  const changed = useCallback((flag: Flag) => setFlags((current) => current && mergeFlag(current, flag)), []);

  const groups = useMemo(() => {
    const shown = (flags ?? []).filter((f) => level === 'all' || PRIORITY_RANK[flagPriority(f)] >= PRIORITY_RANK.urgent).sort(byUrgency);
    return LEVELS.map((p) => ({ priority: p, flags: shown.filter((f) => flagPriority(f) === p) })).filter((g) => g.flags.length);
  }, [flags, level]);

  if (error !== undefined) return <ErrorState error={error} retry={load} />;
  if (!flags) return <Loading label="Loading alerts…" />;
  return (
    <Stack gap="md" maw={960}>
      <Group justify="space-between" align="flex-end">
        <div>
          <Title order={1} size="h2">Alerts</Title>
          <Text c="dimmed" size="sm">{flags.length ? `${flags.length} active` : 'No active alerts. All quiet.'}</Text>
        </div>
        <Group gap="sm">
          <SegmentedControl
            aria-label="Severity shown"
            value={level}
            onChange={(v) => setLevel(v as 'all' | 'urgent')}
            data={[{ value: 'all', label: 'All' }, { value: 'urgent', label: 'Urgent and above' }]}
          />
          <LiveIndicator state={live} />
        </Group>
      </Group>
      {groups.map((group) => (
        <section key={group.priority} aria-labelledby={`level-${group.priority}`}>
          <Title order={2} size="h4" id={`level-${group.priority}`} mb="xs">{PRIORITY_LABEL[group.priority]} ({group.flags.length})</Title>
          <Stack gap="xs">
            {group.flags.map((flag) => <AlertCard key={flag.id} flag={flag} now={now} showPatient onChanged={changed} />)}
          </Stack>
        </section>
      ))}
    </Stack>
  );
}
