import { formatForTable, roundTo, type QuantityReading } from '../vitals/reading.ts';
import type { Breach, Severity } from './rules.ts';

/** Heart failure: fluid retention shows as weight gained over days, before breathlessness. */
export interface WeightGainRule {
  /** Fires on a gain of more than this many kilograms… */
  kg: number;
  /** …over at most this many days. */
  days: number;
  severity: Severity;
}

export const WEIGHT_GAIN: WeightGainRule = { kg: 2, days: 3, severity: 'advice' };

const DAY = 86_400_000;

/**
 * Compares the latest weight with the lowest in the days before it, so a gain that started after
 * a dip within the period still counts. `history` is in time order and ends at `latest`.
 */
export function checkWeightGain(latest: QuantityReading, history: readonly QuantityReading[], rule: WeightGainRule = WEIGHT_GAIN): Breach | undefined {
  const from = latest.time - rule.days * DAY;
  let baseline: QuantityReading | undefined;
  for (const r of history) {
    if (r.time >= from && r.time < latest.time && (!baseline || r.value < baseline.value)) baseline = r;
  }
  if (!baseline) return undefined;
  // Weighed to 0.1 kg: 72.1 − 70.1 is 2.0000000000000284 in binary, which is no gain over 2 kg.
  const gain = roundTo(latest.value - baseline.value, 1);
  if (gain <= rule.kg) return undefined;
  return {
    rule: 'weight-gain',
    severity: rule.severity,
    evidence: [baseline.observationId, latest.observationId],
    text: `Body weight ${formatForTable('weight', latest.value)} kg, up ${gain.toFixed(1)} kg from ${formatForTable('weight', baseline.value)} kg within ${rule.days} days (limit: more than ${rule.kg} kg)`,
  };
}
