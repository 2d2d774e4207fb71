import { Group, Input, SegmentedControl, Select, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { formatHumanName } from '@medplum/core';
import type { Flag, HumanName, Observation } from '@medplum/fhirtypes';
import { IconSearch } from '@tabler/icons-react';
import { memo, startTransition, useCallback, useEffect, useMemo, useState } from 'react';
import { useSession } from '../auth/session.tsx';
import { LiveIndicator } from '../components/LiveIndicator.tsx';
import { ErrorState, Loading } from '../components/LoadState.tsx';
import { useNow } from '../components/TimeAgo.tsx';
import { patientIdOf } from '../fhir/alerts.ts';
import { acuity, loadPanel, mergeFlag, mergeObservation, type PatientRow } from '../fhir/panel.ts';
import { useLive, type LiveChange } from '../live/useLive.ts';
import { PatientTile } from './PatientTile.tsx';

const LIVE_CRITERIA = ['Observation', 'Flag'];
type AlertFilter = 'all' | 'alerts' | 'quiet';
const ALERT_FILTERS = [{ value: 'all', label: 'All' }, { value: 'alerts', label: 'With alerts' }, { value: 'quiet', label: 'No alerts' }];

/** The ward: every patient of the clinician's care teams, most acute first, updated as readings arrive. */
export default function PanelPage() {
  const { medplum, fhirUser } = useSession();
  const [rows, setRows] = useState<Map<string, PatientRow>>();
  // live changes never move a patient between teams: the team list is the loaded one
  const [teams, setTeams] = useState<string[]>([]);
  const [error, setError] = useState<unknown>();
  const [team, setTeam] = useState<string | null>(null);
  const [alerts, setAlerts] = useState<AlertFilter>('all');
  const [query, setQuery] = useState('');
  const now = useNow();

  const load = useCallback(() => {
    setError(undefined);
    loadPanel(medplum, fhirUser).then((loaded) => {
      setRows(loaded);
      setTeams([...new Set([...loaded.values()].flatMap((r) => r.teams))].sort());
    }, setError);
  }, [medplum, fhirUser]);
  useEffect(load, [load]);

  // pushed resources are merged in place: no refetch, so a busy ward causes no request storm; a
  // transition, so drawing a batch yields to input and frames instead of blocking the main thread
  const onChanges = useCallback((changes: LiveChange[]) => startTransition(() => {
    setRows((current) => {
      if (!current) return current;
      const next = new Map(current);
      for (const { resource } of changes) {
        const subject = resource?.resourceType === 'Observation' || resource?.resourceType === 'Flag' ? resource.subject?.reference : undefined;
        const row = next.get(patientIdOf(subject) ?? '');
        if (!row || !resource) continue;
        next.set(row.patient.id as string, resource.resourceType === 'Observation'
          ? { ...row, latest: mergeObservation(row.latest, resource as Observation) }
          : { ...row, flags: mergeFlag(row.flags, resource as Flag) });
      }
      return next;
    });
  }), []);
  const live = useLive(medplum, LIVE_CRITERIA, onChanges);

  const shown = useMemo(() => {
    const text = query.trim().toLowerCase();
    return [...(rows?.values() ?? [])]
      .filter((r) => (!team || r.teams.includes(team)) && (alerts === 'all' || (alerts === 'alerts') === r.flags.length > 0))
      .map((row) => ({ row, name: formatHumanName(row.patient.name?.[0] as HumanName), acuity: acuity(row) }))
      .filter((r) => !text || r.name.toLowerCase().includes(text))
      .sort((a, b) => b.acuity - a.acuity || a.name.localeCompare(b.name))
      .map((r) => r.row);
  }, [rows, team, alerts, query]);

  if (error !== undefined) return <ErrorState error={error} retry={load} />;
  if (!rows) return <Loading label="Loading your patients…" />;
  const withAlerts = [...rows.values()].filter((r) => r.flags.length > 0).length;
  return (
    <Stack gap="md">
      <Group justify="space-between" align="flex-end">
        <div>
          <Title order={1} size="h2">Patients</Title>
          <Text c="dimmed" size="sm">{rows.size} monitored · {withAlerts ? `${withAlerts} with active alerts` : 'no active alerts'}</Text>
        </div>
        <LiveIndicator state={live} />
      </Group>
      <PanelFilters teams={teams} team={team} setTeam={setTeam} alerts={alerts} setAlerts={setAlerts} query={query} setQuery={setQuery} />
      {shown.length === 0 ? (
        <Text c="dimmed">{rows.size ? 'No patient matches these filters.' : 'You are not on any active care team yet.'}</Text>
      ) : (
        <SimpleGrid cols={{ base: 1, sm: 2, lg: 3, xl: 4 }} spacing="sm">
          {shown.map((row) => <PatientTile key={row.patient.id} row={row} now={now} />)}
        </SimpleGrid>
      )}
    </Stack>
  );
}

interface FilterProps {
  teams: string[];
  team: string | null;
  setTeam: (team: string | null) => void;
  alerts: AlertFilter;
  setAlerts: (alerts: AlertFilter) => void;
  query: string;
  setQuery: (query: string) => void;
}

/** Memoised: live batches re-render the page, and these inputs do not change with them. */
const PanelFilters = memo(function PanelFilters({ teams, team, setTeam, alerts, setAlerts, query, setQuery }: FilterProps) {
  return (
    <Group gap="sm" align="flex-end">
      <TextInput label="Find a patient" placeholder="Name" leftSection={<IconSearch size={16} aria-hidden />} value={query} onChange={(e) => setQuery(e.currentTarget.value)} />
      <Select label="Care team" placeholder="All teams" data={teams} value={team} onChange={setTeam} clearable />
      <Input.Wrapper label="Alert state" labelElement="div" id="alert-filter">
        <SegmentedControl display="flex" aria-labelledby="alert-filter-label" value={alerts} onChange={(v) => setAlerts(v as AlertFilter)} data={ALERT_FILTERS} />
      </Input.Wrapper>
    </Group>
  );
});
