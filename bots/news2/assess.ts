import { orderReadings } from '../vitals/order.ts';
import type { Measure, QuantityMeasure, QuantityReading, Reading } from '../vitals/reading.ts';
import { median } from '../vitals/robust.ts';
import { scoreNews2, type News2Score } from './score.ts';

export interface News2Options {
  /** Time of the assessment, epoch ms: normally the time of the reading that triggered it. */
  at: number;
  /** Only readings from `at` minus this many minutes up to `at` count. */
  windowMinutes?: number;
  /** The patient's target SpO2 range is 88–92 % (the caller reads it from an active Goal). */
  scale2?: boolean;
}

/** An input NEWS2 allows to be absent, and what was assumed in its place. */
export interface News2Assumption {
  measure: 'consciousness' | 'oxygenFlow';
  text: string;
}

export type News2Assessment = News2Result | News2NotScored;

export interface News2Result {
  scored: true;
  at: number;
  score: News2Score;
  /** The readings scored (each physiological input's measurement, the latest ACVPU and oxygen flow): the evidence for the resources built from this. */
  used: Reading[];
  assumptions: News2Assumption[];
}

export interface News2NotScored {
  scored: false;
  at: number;
  /** Physiological inputs with no reading in the window; NEWS2 is not scored without all five. */
  missing: QuantityMeasure[];
}

export const DEFAULT_WINDOW_MINUTES = 60;
/**
 * A physiological input is scored by its latest measurement: the median of its newest readings taken
 * within `MEASUREMENT_SPAN_MS` of the newest, at most `MEASUREMENT_READINGS` of them and an odd
 * number (the oldest left out to make it so), so the value scored is one that was read. A wearable
 * sends SpO2 or pulse every few seconds with sensor noise, and one stray sample would otherwise
 * move the score (and a band, and an alert); a spot check scores as taken, and of two readings
 * the newer counts.
 */
export const MEASUREMENT_READINGS = 5;
const MEASUREMENT_SPAN_MS = 5 * 60_000;

function latestMeasurement(readings: readonly QuantityReading[]): QuantityReading[] {
  const newest = readings.at(-1);
  if (!newest) return [];
  const recent = readings.slice(-MEASUREMENT_READINGS).filter((r) => r.time > newest.time - MEASUREMENT_SPAN_MS);
  return recent.slice(1 - (recent.length % 2));
}
const REQUIRED = ['respiratoryRate', 'spo2', 'systolic', 'pulse', 'temperature'] as const;
const INPUTS: ReadonlySet<Measure> = new Set([...REQUIRED, 'consciousness', 'oxygenFlow']);

/** NEWS2 from the latest measurement of each physiological input and the latest ACVPU and oxygen flow in the window. */
export function assessNews2(readings: readonly Reading[], options: News2Options): News2Assessment {
  const { at } = options;
  const windowMinutes = options.windowMinutes ?? DEFAULT_WINDOW_MINUTES;
  const from = at - windowMinutes * 60_000;
  // In time order, so a later reading (or, at the same time, the one given later) comes after an earlier one.
  const inWindow = orderReadings(readings).filter((r) => INPUTS.has(r.measure) && r.time >= from && r.time <= at);
  const latest = new Map<Measure, Reading>(inWindow.map((r) => [r.measure, r]));
  const measured = REQUIRED.map((measure) => latestMeasurement(inWindow.filter((r): r is QuantityReading => r.measure === measure)));
  const missing = REQUIRED.filter((_, i) => measured[i].length === 0);
  if (missing.length > 0) return { scored: false, at, missing };
  const [respiratoryRate, spo2, systolic, pulse, temperature] = measured.map((m) => median(m.map((r) => r.value)));

  const assumptions: News2Assumption[] = [];
  const consciousness = latest.get('consciousness');
  if (consciousness?.measure !== 'consciousness') {
    assumptions.push({ measure: 'consciousness', text: `No consciousness (ACVPU) reading in the last ${windowMinutes} min: assumed alert.` });
  }
  const flow = latest.get('oxygenFlow');
  const oxygenFlow = flow?.measure === 'oxygenFlow' ? flow.value : undefined;
  if (oxygenFlow === undefined) {
    assumptions.push({ measure: 'oxygenFlow', text: `No inhaled oxygen flow reading in the last ${windowMinutes} min: assumed breathing air.` });
  }

  const score = scoreNews2({
    respiratoryRate,
    spo2,
    systolic,
    pulse,
    temperature,
    onOxygen: (oxygenFlow ?? 0) > 0,
    consciousness: consciousness?.measure === 'consciousness' ? consciousness.value : 'alert',
    scale2: options.scale2 ?? false,
  });
  const used = [...measured.flat(), ...(['consciousness', 'oxygenFlow'] as const).flatMap((m) => latest.get(m) ?? [])];
  return { scored: true, at, score, used, assumptions };
}
