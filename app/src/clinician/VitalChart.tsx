import { Paper, Text, useComputedColorScheme } from '@mantine/core';
import type { Flag } from '@medplum/fhirtypes';
import { memo } from 'react';
import { Area, CartesianGrid, ComposedChart, Line, ReferenceArea, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { flagPriority, PRIORITY_COLOR, alertTitle } from '../fhir/alerts.ts';
import type { Point } from '../fhir/timeseries.ts';
import { formatValue, type Vital } from '../fhir/vitals.ts';

interface Props {
  vital: Vital;
  points: Point[];
  start: number;
  end: number;
  /** The patient's own target range (Goal), shaded over the usual range. */
  goal?: { low?: number; high?: number };
  flags: Flag[];
}

const TICKS = 6;
const tick = (span: number) => (t: number): string =>
  new Date(t).toLocaleString(undefined, span > 2 * 86_400_000 ? { month: 'short', day: 'numeric' } : { hour: '2-digit', minute: '2-digit' });
const ticks = (start: number, end: number): number[] => Array.from({ length: TICKS }, (_, i) => start + ((end - start) * i) / (TICKS - 1));

/**
 * One vital over time: the bucket average as a line, the bucket's min–max as a band, the usual range
 * and the patient's target shaded, alerts as markers where they started.
 */
export const VitalChart = memo(function VitalChart({ vital, points, start, end, goal, flags }: Props) {
  const dark = useComputedColorScheme('light') === 'dark';
  const data = points.map((p) => ({ t: p.t, average: p.average, range: [p.minimum, p.maximum] as [number, number] }));
  const values = points.flatMap((p) => [p.minimum, p.maximum]);
  const summary = values.length
    ? `${vital.label} from ${formatValue(vital, Math.min(...values))} to ${formatValue(vital, Math.max(...values))} ${vital.unit}, latest average ${formatValue(vital, points[points.length - 1].average)}`
    : `No ${vital.label} readings in this period`;
  const [low, high] = vital.normal;
  return (
    <Paper withBorder p="sm" component="figure" m={0} aria-label={summary}>
      <Text component="figcaption" size="sm" fw={600} mb={4}>{vital.label} <Text span c="dimmed" size="xs">({vital.unit})</Text></Text>
      {values.length === 0 ? (
        <Text size="sm" c="dimmed" py="md">No readings in this period.</Text>
      ) : (
        <div role="img" aria-label={summary} style={{ height: 170 }}>
          <ResponsiveContainer width="100%" height="100%">
            <ComposedChart data={data} margin={{ top: 4, right: 8, bottom: 0, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke={dark ? '#373a40' : '#e9ecef'} />
              <XAxis dataKey="t" type="number" scale="time" domain={[start, end]} ticks={ticks(start, end)} tickFormatter={tick(end - start)} fontSize={11} stroke="currentColor" />
              <YAxis domain={['auto', 'auto']} width={40} fontSize={11} stroke="currentColor" />
              {Number.isFinite(high) && <ReferenceArea y1={low} y2={high} fill="#12b886" fillOpacity={0.08} ifOverflow="hidden" />}
              {goal && (goal.low !== undefined || goal.high !== undefined) && (
                <ReferenceArea y1={goal.low} y2={goal.high} fill="#4c6ef5" fillOpacity={0.1} stroke="#4c6ef5" strokeDasharray="4 4" ifOverflow="hidden" />
              )}
              <Area dataKey="range" stroke="none" fill="#4c6ef5" fillOpacity={0.2} isAnimationActive={false} />
              <Line dataKey="average" stroke="#4263eb" dot={points.length < 40} strokeWidth={2} isAnimationActive={false} />
              {flags.map((f) => (
                <ReferenceLine key={f.id} x={Date.parse(f.period?.start ?? '')} stroke={`var(--mantine-color-${PRIORITY_COLOR[flagPriority(f)].replace('.', '-')})`} strokeDasharray="3 3" label={{ value: '▲', position: 'insideTop', fontSize: 10 }} ifOverflow="hidden">
                  <title>{alertTitle(f)}</title>
                </ReferenceLine>
              ))}
              <Tooltip
                labelFormatter={(t) => new Date(Number(t)).toLocaleString()}
                formatter={(v) => (Array.isArray(v) ? `${formatValue(vital, v[0])}–${formatValue(vital, v[1])}` : formatValue(vital, Number(v)))}
                contentStyle={{ background: dark ? '#25262b' : '#fff' }}
              />
            </ComposedChart>
          </ResponsiveContainer>
        </div>
      )}
    </Paper>
  );
});
