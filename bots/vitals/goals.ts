import type { Goal, Quantity } from '@medplum/fhirtypes';
import { LOINC, MEASURE_BY_LOINC } from './codes.ts';
import type { QuantityMeasure } from './reading.ts';
import { toCanonical } from './units.ts';

/** A patient's acceptable range for a measure, from a Goal target, in canonical units. */
export interface GoalRange {
  measure: QuantityMeasure;
  low?: number;
  high?: number;
}

/**
 * The ranges that active Goals set (`target.measure` a LOINC vital sign, `target.detailRange`); a
 * bound in a unit that cannot be converted is dropped. The first Goal per measure wins.
 */
export function goalRanges(goals: readonly Goal[]): GoalRange[] {
  const ranges = new Map<QuantityMeasure, GoalRange>();
  for (const goal of goals) {
    if (goal.lifecycleStatus !== 'active') continue;
    for (const target of goal.target ?? []) {
      const code = target.measure?.coding?.find((c) => c.system === LOINC && c.code && MEASURE_BY_LOINC.has(c.code))?.code;
      const measure = code ? MEASURE_BY_LOINC.get(code) : undefined;
      if (!measure || measure === 'consciousness' || ranges.has(measure) || !target.detailRange) continue;
      const low = bound(measure, target.detailRange.low);
      const high = bound(measure, target.detailRange.high);
      if (low !== undefined || high !== undefined) ranges.set(measure, { measure, ...(low !== undefined ? { low } : {}), ...(high !== undefined ? { high } : {}) });
    }
  }
  return [...ranges.values()];
}

/** NEWS2 SpO2 scale 2 is for patients whose prescribed target is 88–92 %. */
export const isScale2 = (ranges: readonly GoalRange[]): boolean =>
  ranges.some((r) => r.measure === 'spo2' && r.low === 88 && r.high === 92);

function bound(measure: QuantityMeasure, q: Quantity | undefined): number | undefined {
  if (q?.value === undefined) return undefined;
  if (!q.code && !q.unit) return q.value;
  const converted = toCanonical(measure, q);
  return 'value' in converted ? converted.value : undefined;
}
