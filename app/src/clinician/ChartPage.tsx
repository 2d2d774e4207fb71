import { Badge, Button, Grid, Group, Paper, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import { formatHumanName } from '@medplum/core';
import type { Flag, HumanName, Observation } from '@medplum/fhirtypes';
import { ResourceName } from '@medplum/react';
import { IconAdjustments } from '@tabler/icons-react';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Link, useParams } from 'react-router';
import { useSession } from '../auth/session.tsx';
import { LiveIndicator } from '../components/LiveIndicator.tsx';
import { ErrorState, Loading } from '../components/LoadState.tsx';
import { News2Badge } from '../components/News2Badge.tsx';
import { RangePicker, rangeFor, type Range } from '../components/RangePicker.tsx';
import { ago, localTime, useNow } from '../components/TimeAgo.tsx';
import { news2Of } from '../fhir/alerts.ts';
import { isKind } from '../fhir/care.ts';
import { mergeObservation } from '../fhir/panel.ts';
import { goalRange, usePatientRecord } from '../fhir/patient.ts';
import { loadSeries, type Point } from '../fhir/timeseries.ts';
import { ageYears, NEWS2_CODE, NEWS2_SYSTEM, VITALS, type Vital } from '../fhir/vitals.ts';
import { useLive, type LiveChange } from '../live/useLive.ts';
import { AlertCard } from './AlertCard.tsx';
import { VitalChart } from './VitalChart.tsx';

const NEWS2_VITAL: Vital = { key: 'news2', label: 'NEWS2', plain: 'NEWS2', unit: 'score', codes: [], normal: [0, 4], decimals: 0 };
/** A live chart refreshes at most this often, whatever the reading rate. */
const REFRESH_MS = 10_000;
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** One patient: vitals over time against their ranges, NEWS2, alerts, devices, messages, care team. */
export default function ChartPage() {
  const { id = '' } = useParams();
  const { medplum } = useSession();
  const { record, setRecord, error: loadError, reload: load } = usePatientRecord(medplum, id);
  const [chartError, setError] = useState<unknown>();
  const error = loadError ?? chartError;
  const [range, setRange] = useState<Range>(() => rangeFor('24h'));
  const [series, setSeries] = useState<Map<string, Point[]>>();
  const [news2, setNews2] = useState<Point[]>([]);
  const now = useNow();


  const loadCharts = useCallback(async (r: Range) => {
    const [s, scores] = await Promise.all([
      loadSeries(medplum, id, r.start, r.end),
      medplum.searchResources('Observation', [
        ['patient', `Patient/${id}`], ['code', `${NEWS2_SYSTEM}|${NEWS2_CODE}`],
        ['date', `ge${new Date(r.start).toISOString()}`], ['date', `le${new Date(r.end).toISOString()}`],
        ['_sort', '-date'], ['_count', '1000'], ['_elements', 'value,effective'],
      ], { cache: 'no-cache' }),
    ]);
    setSeries(s);
    // the newest thousand, oldest first
    setNews2(scores.filter((o) => o.valueInteger !== undefined).reverse().map((o) => {
      const v = o.valueInteger as number;
      return { t: Date.parse(o.effectiveDateTime ?? ''), average: v, minimum: v, maximum: v, count: 1 };
    }));
  }, [medplum, id]);
  useEffect(() => {
    if (record) loadCharts(range).catch(setError);
  }, [record, range, loadCharts]);

  // live: new readings update the latest values at once and the charts (when showing "now") every few seconds
  const due = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => () => clearTimeout(due.current), []);
  const onChanges = useCallback((changes: LiveChange[]) => {
    const resources = changes.flatMap((c) => (c.resource ? [c.resource] : []));
    const observations = resources.filter((r): r is Observation => r.resourceType === 'Observation');
    const flags = resources.filter((r): r is Flag => r.resourceType === 'Flag');
    setRecord((r) => r && {
      ...r,
      latest: observations.reduce(mergeObservation, r.latest),
      flags: flags.reduce((all, flag) => [flag, ...all.filter((f) => f.id !== flag.id)], r.flags),
    });
    if (observations.length && range.key !== 'custom' && !due.current) {
      due.current = setTimeout(() => {
        due.current = undefined;
        setRange(rangeFor(range.key as Exclude<Range['key'], 'custom'>));
      }, REFRESH_MS);
    }
  }, [range.key]);
  const criteria = useMemo(() => [`Observation?patient=Patient/${id}`, `Flag?patient=Patient/${id}`], [id]);
  const live = useLive(medplum, criteria, onChanges);

  if (error !== undefined) return <ErrorState error={error} retry={load} />;
  if (!record) return <Loading label="Loading the chart…" />;
  const { patient, flags, goals, devices, teams, communications } = record;
  const active = flags.filter((f) => f.status === 'active');
  const ended = flags.filter((f) => f.status !== 'active').slice(0, 10);
  const score = record.latest.map(news2Of).find(Boolean);
  const name = formatHumanName(patient.name?.[0] as HumanName) || 'Unnamed patient';
  const inRange = (f: Flag): boolean => {
    const t = Date.parse(f.period?.start ?? '');
    return t >= range.start && t <= range.end;
  };
  const changed = (flag: Flag): void => setRecord((r) => r && { ...r, flags: [flag, ...r.flags.filter((f) => f.id !== flag.id)] });
  const charted = VITALS.filter((v) => (series?.get(v.codes[0])?.length ?? 0) > 0);

  return (
    <Stack gap="md">
      <Group justify="space-between" align="flex-start">
        <div>
          <Title order={1} size="h2">{name}</Title>
          <Text c="dimmed" size="sm">
            {[patient.birthDate && `${ageYears(patient.birthDate)} years (born ${patient.birthDate})`, patient.gender, 'Monitored at home'].filter(Boolean).join(' · ')}
          </Text>
        </div>
        <Group gap="sm">
          <News2Badge news2={score} size="xl" />
          {active.length > 0 && <Badge color="red.9" size="xl">{active.length} active alert{active.length > 1 ? 's' : ''}</Badge>}
          <LiveIndicator state={live} />
          <Button component={Link} to={`/patients/${id}/plan`} variant="default" leftSection={<IconAdjustments size={16} aria-hidden />}>Monitoring plan</Button>
        </Group>
      </Group>
      <Grid gutter="md">
        <Grid.Col span={{ base: 12, lg: 8 }}>
          <Stack gap="sm">
            <Group justify="space-between" align="flex-end">
              <Title order={2} size="h4">Vital signs</Title>
              <RangePicker range={range} onChange={setRange} />
            </Group>
            <Text size="xs" c="dimmed">Times in {ZONE}. Shaded: usual range (green), the patient's target (blue, dashed). ▲ marks an alert.</Text>
            {!series ? <Loading label="Loading vital signs…" /> : (
              <SimpleGrid cols={{ base: 1, md: 2 }} spacing="sm">
                {charted.map((vital) => (
                  <VitalChart key={vital.key} vital={vital} points={series.get(vital.codes[0]) ?? []} start={range.start} end={range.end}
                    goal={goalRange(goals, vital.codes[0])} flags={flags.filter(inRange)} />
                ))}
                <VitalChart vital={NEWS2_VITAL} points={news2} start={range.start} end={range.end} flags={[]} />
                {charted.length === 0 && <Text c="dimmed">No vital signs in this period.</Text>}
              </SimpleGrid>
            )}
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 4 }}>
          <Stack gap="md">
            <section aria-labelledby="alerts-heading">
              <Title order={2} size="h4" id="alerts-heading" mb="xs">Alerts</Title>
              <Stack gap="xs">
                {active.length === 0 && <Text size="sm" c="dimmed">No active alerts.</Text>}
                {active.map((f) => <AlertCard key={f.id} flag={f} now={now} onChanged={changed} />)}
                {ended.length > 0 && <Text size="sm" fw={600} mt="xs">Recently ended</Text>}
                {ended.map((f) => <AlertCard key={f.id} flag={f} now={now} onChanged={changed} />)}
              </Stack>
            </section>
            <Paper withBorder p="sm" component="section" aria-labelledby="devices-heading">
              <Title order={2} size="h5" id="devices-heading" mb={4}>Devices</Title>
              {devices.length === 0 && <Text size="sm" c="dimmed">No device enrolled.</Text>}
              {devices.map((d) => {
                const seen = record.latest.filter((o) => o.device?.reference === `Device/${d.id}`).map((o) => o.effectiveDateTime ?? '').sort().at(-1);
                return (
                  <Text size="sm" key={d.id}>
                    {d.deviceName?.[0]?.name ?? 'Device'} {d.manufacturer && `(${d.manufacturer})`} · {d.status ?? 'unknown'} · last reading {ago(seen, now)}
                  </Text>
                );
              })}
            </Paper>
            <Paper withBorder p="sm" component="section" aria-labelledby="team-heading">
              <Title order={2} size="h5" id="team-heading" mb={4}>Care team</Title>
              {[...new Map(teams.flatMap((t) => t.participant ?? []).map((p) => [p.member?.reference, p])).values()].map((p) => (
                <Text size="sm" key={p.member?.reference}><ResourceName value={p.member} />{p.role?.[0]?.text && ` · ${p.role[0].text}`}</Text>
              ))}
              {teams.length === 0 && <Text size="sm" c="dimmed">No active care team.</Text>}
            </Paper>
            <Paper withBorder p="sm" component="section" aria-labelledby="messages-heading">
              <Title order={2} size="h5" id="messages-heading" mb={4}>Messages and notes</Title>
              {communications.length === 0 && <Text size="sm" c="dimmed">Nothing yet.</Text>}
              <Stack gap={6}>
                {communications.slice(0, 15).map((c) => (
                  <div key={c.id}>
                    <Text size="xs" c="dimmed">
                      {isKind(c, 'note') ? 'Note' : isKind(c, 'message') ? 'Message' : `Alert notice (${c.priority ?? 'routine'}, ${c.status})`}
                      {c.sender && <> · <ResourceName value={c.sender} /></>}
                      {c.sent && <> · <time dateTime={c.sent}>{localTime(c.sent)}</time></>}
                    </Text>
                    <Text size="sm">{c.payload?.[0]?.contentString}</Text>
                  </div>
                ))}
              </Stack>
            </Paper>
          </Stack>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
