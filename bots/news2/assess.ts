import { orderReadings } from '../vitals/order.ts';
import type { Measure, QuantityMeasure, Reading } from '../vitals/reading.ts';
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
  /** The readings scored, one per measure: the evidence for the resources built from this. */
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
const REQUIRED = ['respiratoryRate', 'spo2', 'systolic', 'pulse', 'temperature'] as const;
const INPUTS: ReadonlySet<Measure> = new Set([...REQUIRED, 'consciousness', 'oxygenFlow']);

/** NEWS2 from the latest reading of each measure in the window. */
export function assessNews2(readings: readonly Reading[], options: News2Options): News2Assessment {
  const { at } = options;
  const windowMinutes = options.windowMinutes ?? DEFAULT_WINDOW_MINUTES;
  const from = at - windowMinutes * 60_000;
  const latest = new Map<Measure, Reading>();
  // In time order, so a later reading (or, at the same time, the one given later) replaces an earlier one.
  for (const r of orderReadings(readings)) {
    if (INPUTS.has(r.measure) && r.time >= from && r.time <= at) latest.set(r.measure, r);
  }

  const value = (measure: QuantityMeasure): number | undefined => {
    const r = latest.get(measure);
    return r && r.measure !== 'consciousness' ? r.value : undefined;
  };
  const missing = REQUIRED.filter((m) => value(m) === undefined);
  if (missing.length > 0) return { scored: false, at, missing };
  const [respiratoryRate, spo2, systolic, pulse, temperature] = REQUIRED.map(value) as number[];

  const assumptions: News2Assumption[] = [];
  const consciousness = latest.get('consciousness');
  if (consciousness?.measure !== 'consciousness') {
    assumptions.push({ measure: 'consciousness', text: `No consciousness (ACVPU) reading in the last ${windowMinutes} min: assumed alert.` });
  }
  const oxygenFlow = value('oxygenFlow');
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
  return { scored: true, at, score, used: [...latest.values()], assumptions };
}
