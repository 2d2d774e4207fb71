import { orderReadings } from '../vitals/order.ts';
import { median } from '../vitals/robust.ts';
import { DISPLAY_UNIT, MEASURE_LABEL, formatForTable, roundForTable, type QuantityReading, type Reading } from '../vitals/reading.ts';
import { isThresholdReading, limitRules, type Breach, type LimitRule, type Persistence, type PersonalRange, type ThresholdReading } from './rules.ts';
import { checkWeightGain, WEIGHT_GAIN, type WeightGainRule } from './weight.ts';

export interface ThresholdOptions {
  /** Replaces DEFAULT_LIMITS. */
  limits?: readonly LimitRule[];
  /** Replaces TWO_OF_LAST_THREE_IN_30_MIN for the advice a personal range adds to a side without an advice limit. */
  advice?: Persistence;
  /** Replaces WEIGHT_GAIN. */
  weightGain?: WeightGainRule;
}

/**
 * The home-monitoring rules that a new reading breaches, at most one per side of its measure (the
 * most severe that fires) plus weight gain. `recent` is the stored history of the patient's readings
 * in any order, duplicates allowed; readings taken after `latest` are left out, as they are judged
 * on their own arrival. `overrides` hold at most one personal range per measure.
 */
export function evaluateThresholds(
  latest: Reading,
  recent: readonly Reading[],
  overrides: readonly PersonalRange[] = [],
  options: ThresholdOptions = {},
): Breach[] {
  if (!isThresholdReading(latest)) return [];
  const measure = latest.measure;
  const history = orderReadings([...recent, latest]).filter(
    (r): r is QuantityReading => r.measure === measure && r.time <= latest.time,
  );
  const personal = overrides.find((o) => o.measure === measure);
  const rules = limitRules(measure, personal, options.limits, options.advice);
  const breaches: Breach[] = [];
  for (const side of ['low', 'high'] as const) {
    for (const rule of rules.filter((r) => r.side === side)) {
      const breach = checkLimit(rule, latest, history);
      if (breach) {
        breaches.push(breach);
        break;
      }
    }
  }
  if (measure === 'weight') {
    const gain = checkWeightGain(latest, history, options.weightGain);
    if (gain) breaches.push(gain);
  }
  return breaches;
}

/**
 * Whether judging `latest` needs its history: only a reading that itself meets a limit can breach
 * one, and only a limit with persistence looks behind it (the most severe limit met on a side
 * decides when it fires at once); weight gain compares with earlier weights. Most readings are
 * within limits, so most runs need no history read.
 */
export function needsHistory(latest: Reading, overrides: readonly PersonalRange[] = [], options: ThresholdOptions = {}): boolean {
  if (!isThresholdReading(latest)) return false;
  return latest.measure === 'weight' || persistentLimits(latest, overrides, options).length > 0;
}

/**
 * How far back judging `latest` looks: the longest persistence window of the limits in force for
 * its measure, and for a weight the gain period. A personal range counts: it may add advice, with
 * its window, to a measure whose defaults all fire at once (a home blood-pressure target).
 */
export function lookbackMs(latest: ThresholdReading, overrides: readonly PersonalRange[] = [], options: ThresholdOptions = {}): number {
  const { measure } = latest;
  const windows = limitRules(measure, overrides.find((o) => o.measure === measure), options.limits, options.advice).map((r) => r.persistence.withinMinutes * 60_000);
  if (measure === 'weight') windows.push((options.weightGain ?? WEIGHT_GAIN).days * 86_400_000);
  return Math.max(0, ...windows);
}

/** On each side of the reading's measure, the most severe limit it meets. */
export function metLimits(latest: ThresholdReading, overrides: readonly PersonalRange[] = [], options: ThresholdOptions = {}): LimitRule[] {
  const { measure, value } = latest;
  const rules = limitRules(measure, overrides.find((o) => o.measure === measure), options.limits, options.advice);
  return (['low', 'high'] as const).flatMap((side) => {
    const met = rules.find((r) => r.side === side && meets(r, value));
    return met ? [met] : [];
  });
}

/** On each side of the reading's measure, the most severe limit it meets, where that limit has persistence. */
export function persistentLimits(latest: ThresholdReading, overrides: readonly PersonalRange[] = [], options: ThresholdOptions = {}): LimitRule[] {
  return metLimits(latest, overrides, options).filter((limit) => !firesAtOnce(limit.persistence));
}

const firesAtOnce = ({ count, of, spanMinutes }: Persistence): boolean => count === 1 && of === 1 && spanMinutes === 0;

function meets(rule: LimitRule, value: number): boolean {
  const v = roundForTable(rule.measure, value);
  if (rule.side === 'low') return rule.inclusive ? v <= rule.limit : v < rule.limit;
  return rule.inclusive ? v >= rule.limit : v > rule.limit;
}

/** Readings less than a span apart, judged as one by their median. */
interface Measurement {
  value: number;
  readings: QuantityReading[];
}

/**
 * The time-ordered readings as measurements, oldest first: each takes the readings within `spanMs`
 * before its newest one, so spot checks further apart stay one reading each.
 */
function measurementsOf(readings: readonly QuantityReading[], spanMs: number): Measurement[] {
  const measurements: Measurement[] = [];
  let end = readings.length;
  while (end > 0) {
    const newest = readings[end - 1].time;
    let start = end - 1;
    while (start > 0 && readings[start - 1].time > newest - spanMs) start--;
    const group = readings.slice(start, end);
    measurements.push({ value: median(group.map((r) => r.value)), readings: group });
    end = start;
  }
  return measurements.reverse();
}

function checkLimit(rule: LimitRule, latest: QuantityReading, history: readonly QuantityReading[]): Breach | undefined {
  if (!meets(rule, latest.value)) return undefined;
  const { count, of, withinMinutes, spanMinutes } = rule.persistence;
  const from = latest.time - withinMinutes * 60_000;
  // History ends with `latest`, so its measurement is always the last.
  const considered = measurementsOf(
    history.filter((r) => r.time >= from),
    spanMinutes * 60_000,
  ).slice(-of);
  const current = considered[considered.length - 1];
  if (!meets(rule, current.value)) return undefined;
  const hits = considered.filter((m) => meets(rule, m.value));
  if (hits.length < count) return undefined;
  const value = current.readings.length > 1 ? current.value : latest.value;
  const source = current.readings.length > 1 ? ` (the median of ${current.readings.length} readings in ${spanMinutes} min)` : '';
  const counted = considered.some((m) => m.readings.length > 1) ? `${spanMinutes}-minute measurements` : 'readings';
  const persistence = count > 1 ? `, in ${hits.length} of the last ${considered.length} ${counted} within ${withinMinutes} min` : '';
  return {
    rule: `${rule.measure}-${rule.side}`,
    severity: rule.severity,
    // a measurement's evidence is its newest reading that meets the rule: a handful of references, not a stream
    // (the median meets, so one reading at least does: rounding keeps the order)
    evidence: hits.map((m) => (m.readings.findLast((r) => meets(rule, r.value)) as QuantityReading).observationId),
    text: `${describe(rule, value, source)}${persistence}`,
  };
}

function describe(rule: LimitRule, value: number, source: string): string {
  const unit = DISPLAY_UNIT[rule.measure];
  const label = MEASURE_LABEL[rule.measure];
  const reading = `${label[0].toUpperCase()}${label.slice(1)} ${formatForTable(rule.measure, value)} ${unit}${source}`;
  if (rule.personal) return `${reading} is outside the personal range ${range(rule.personal, unit)}`;
  const direction = rule.side === 'low' ? 'below' : 'above';
  return `${reading} is ${rule.inclusive ? `at or ${direction}` : direction} ${formatForTable(rule.measure, rule.limit)} ${unit}`;
}

function range({ low, high }: PersonalRange, unit: string): string {
  if (low !== undefined && high !== undefined) return `${low}–${high} ${unit}`;
  return low !== undefined ? `of at least ${low} ${unit}` : `of at most ${high} ${unit}`;
}
