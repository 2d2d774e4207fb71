import type { QuantityMeasure, QuantityReading, Reading } from '../vitals/reading.ts';

export type Severity = 'urgent' | 'advice';

/** The measures with limits: those of the defaults, and weight (its gain, and a Goal's range). */
export const THRESHOLD_MEASURES = ['spo2', 'pulse', 'systolic', 'diastolic', 'temperature', 'respiratoryRate', 'weight'] as const satisfies readonly QuantityMeasure[];
export type ThresholdMeasure = (typeof THRESHOLD_MEASURES)[number];
export interface ThresholdReading extends QuantityReading {
  measure: ThresholdMeasure;
}
export const isThresholdReading = (r: Reading): r is ThresholdReading => (THRESHOLD_MEASURES as readonly string[]).includes(r.measure);

/**
 * Every rule a breach can name: a side of any measure, as a personal range may set either (SpO2
 * 88–92 % gives `spo2-high`), and weight gain. Alert codes are keyed by it, so each has one.
 */
export type ThresholdRule = `${ThresholdMeasure}-${LimitRule['side']}` | 'weight-gain';

export interface Breach {
  /** Stable across severities, so a Flag can escalate. */
  rule: ThresholdRule;
  severity: Severity;
  /** Observation ids of the readings that met the rule, oldest first. */
  evidence: string[];
  text: string;
}

/**
 * A rule fires when the triggering reading meets it and so do at least `count` of the last `of`
 * measurements of its measure taken within `withinMinutes` before it (the triggering one included).
 * Readings less than `spanMinutes` apart make one measurement, judged by their median: a spot-check
 * cuff gives one reading per measurement, a wearable streaming every few seconds gives hundreds,
 * and its single noisy samples (a sleeping patient's SpO2 dipping a point for a breath) must not
 * add up to an alert while a sustained change does.
 */
export interface Persistence {
  count: number;
  of: number;
  withinMinutes: number;
  spanMinutes: number;
}

export const AT_ONCE: Persistence = { count: 1, of: 1, withinMinutes: 0, spanMinutes: 0 };
/** One stray reading (a cold finger, a moving arm) is not advice-worthy; two of three 5-minute measurements within 30 minutes are. */
export const TWO_OF_LAST_THREE_IN_30_MIN: Persistence = { count: 2, of: 3, withinMinutes: 30, spanMinutes: 5 };

/**
 * A one-sided limit on a measure's value, rounded to the clinical table's precision. On the low
 * side it is met by values at or below the limit (below, if not inclusive); on the high side by
 * values at or above it (above). An advice limit also counts readings past the urgent limit, so a
 * worsening series still adds up to advice when urgent does not fire.
 */
export interface LimitRule {
  measure: ThresholdMeasure;
  side: 'low' | 'high';
  limit: number;
  inclusive: boolean;
  severity: Severity;
  persistence: Persistence;
  /** The personal range this limit came from, for the alert text. */
  personal?: PersonalRange;
}

/** From an active Goal: the range of values acceptable for this patient. */
export interface PersonalRange {
  measure: QuantityMeasure;
  low?: number;
  high?: number;
}

const urgent = (measure: ThresholdMeasure, side: LimitRule['side'], limit: number): LimitRule => ({
  measure,
  side,
  limit,
  inclusive: true,
  severity: 'urgent',
  persistence: AT_ONCE,
});
const advice = (measure: ThresholdMeasure, side: LimitRule['side'], limit: number): LimitRule => ({
  measure,
  side,
  limit,
  inclusive: true,
  severity: 'advice',
  persistence: TWO_OF_LAST_THREE_IN_30_MIN,
});

/** Home-monitoring defaults: SpO2 ≤ 92 urgent, 93–94 advice; pulse ≥ 131 or ≤ 40 urgent, 111–130 advice; … */
export const DEFAULT_LIMITS: readonly LimitRule[] = [
  urgent('spo2', 'low', 92),
  advice('spo2', 'low', 94),
  urgent('pulse', 'high', 131),
  advice('pulse', 'high', 111),
  urgent('pulse', 'low', 40),
  urgent('systolic', 'high', 180),
  urgent('systolic', 'low', 90),
  urgent('diastolic', 'high', 120),
  urgent('temperature', 'high', 39.1),
  advice('temperature', 'high', 38.1),
  urgent('temperature', 'low', 35.0),
  urgent('respiratoryRate', 'high', 25),
  urgent('respiratoryRate', 'low', 8),
];

/**
 * The limits for a measure, most severe first on each side. A personal range moves the edge of
 * normal on each side it gives: a value outside it is advice, and urgent where the default urgent
 * limit is also passed; when the range reaches past a default urgent limit (SpO2 88–92 % in
 * COPD), urgent starts just outside the range instead, so an accepted value never alerts. The
 * range's advice persists as the side's advice limit does, or as `advice` where the side has none.
 */
export function limitRules(
  measure: ThresholdMeasure,
  personal?: PersonalRange,
  defaults: readonly LimitRule[] = DEFAULT_LIMITS,
  advice: Persistence = TWO_OF_LAST_THREE_IN_30_MIN,
): LimitRule[] {
  const own = defaults.filter((r) => r.measure === measure);
  return (['low', 'high'] as const).flatMap((side) => {
    const rules = own.filter((r) => r.side === side).sort((a, b) => severityRank(a) - severityRank(b));
    const edge = personal?.[side];
    if (edge === undefined) return rules;
    const beyond = side === 'low' ? (r: LimitRule) => edge <= r.limit : (r: LimitRule) => edge >= r.limit;
    const urgents = rules
      .filter((r) => r.severity === 'urgent')
      .map((r) => (beyond(r) ? { ...r, limit: edge, inclusive: false, personal } : r));
    const persistence = rules.find((r) => r.severity === 'advice')?.persistence ?? advice;
    return [...urgents, { measure, side, limit: edge, inclusive: false, severity: 'advice' as const, persistence, personal }];
  });
}

const severityRank = (r: LimitRule): number => (r.severity === 'urgent' ? 0 : 1);
