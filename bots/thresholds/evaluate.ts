import { orderReadings } from '../vitals/order.ts';
import { DISPLAY_UNIT, MEASURE_LABEL, formatForTable, roundForTable, type QuantityReading, type Reading } from '../vitals/reading.ts';
import { limitRules, type Breach, type LimitRule, type PersonalRange } from './rules.ts';
import { checkWeightGain, type WeightGainRule } from './weight.ts';

export interface ThresholdOptions {
  /** Replaces DEFAULT_LIMITS. */
  limits?: readonly LimitRule[];
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
  if (latest.measure === 'consciousness') return [];
  const measure = latest.measure;
  const history = orderReadings([...recent, latest]).filter(
    (r): r is QuantityReading => r.measure === measure && r.time <= latest.time,
  );
  const personal = overrides.find((o) => o.measure === measure);
  const rules = limitRules(measure, personal, options.limits);
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
 * one (persistence counts earlier readings only behind it), and weight gain compares with earlier
 * weights. Most readings are within limits, so most runs need no history read.
 */
export function needsHistory(latest: Reading, overrides: readonly PersonalRange[] = [], options: ThresholdOptions = {}): boolean {
  if (latest.measure === 'consciousness') return false;
  if (latest.measure === 'weight') return true;
  const { measure, value } = latest;
  return limitRules(measure, overrides.find((o) => o.measure === measure), options.limits).some((rule) => meets(rule, value));
}

function meets(rule: LimitRule, value: number): boolean {
  const v = roundForTable(rule.measure, value);
  if (rule.side === 'low') return rule.inclusive ? v <= rule.limit : v < rule.limit;
  return rule.inclusive ? v >= rule.limit : v > rule.limit;
}

function checkLimit(rule: LimitRule, latest: QuantityReading, history: readonly QuantityReading[]): Breach | undefined {
  if (!meets(rule, latest.value)) return undefined;
  const { count, of, withinMinutes } = rule.persistence;
  const from = latest.time - withinMinutes * 60_000;
  // History ends with `latest`, so it is always among the last `of`.
  const considered = history.filter((r) => r.time >= from).slice(-of);
  const hits = considered.filter((r) => meets(rule, r.value));
  if (hits.length < count) return undefined;
  const persistence = count > 1 ? `, in ${hits.length} of the last ${considered.length} readings within ${withinMinutes} min` : '';
  return {
    rule: `${rule.measure}-${rule.side}`,
    severity: rule.severity,
    evidence: hits.map((r) => r.observationId),
    text: `${describe(rule, latest.value)}${persistence}`,
  };
}

function describe(rule: LimitRule, value: number): string {
  const unit = DISPLAY_UNIT[rule.measure];
  const label = MEASURE_LABEL[rule.measure];
  const reading = `${label[0].toUpperCase()}${label.slice(1)} ${formatForTable(rule.measure, value)} ${unit}`;
  if (rule.personal) return `${reading} is outside the personal range ${range(rule.personal, unit)}`;
  const direction = rule.side === 'low' ? 'below' : 'above';
  return `${reading} is ${rule.inclusive ? `at or ${direction}` : direction} ${formatForTable(rule.measure, rule.limit)} ${unit}`;
}

function range({ low, high }: PersonalRange, unit: string): string {
  if (low !== undefined && high !== undefined) return `${low}–${high} ${unit}`;
  return low !== undefined ? `of at least ${low} ${unit}` : `of at most ${high} ${unit}`;
}
