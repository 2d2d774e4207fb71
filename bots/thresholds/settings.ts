import type { Parameters } from '../runtime/manifest.ts';
import { PLAUSIBLE } from '../vitals/plausible.ts';
import { DISPLAY_UNIT } from '../vitals/reading.ts';
import { MONITORING_HORIZON_MS } from '../vitals/recency.ts';
import type { ThresholdOptions } from './evaluate.ts';
import { AT_ONCE, DEFAULT_LIMITS, TWO_OF_LAST_THREE_IN_30_MIN, type LimitRule, type Persistence } from './rules.ts';

/** A default limit's parameter: its rule and severity, `spo2-low-urgent`, `pulse-high-advice`. */
const limitParameter = (rule: LimitRule): string => `${rule.measure}-${rule.side}-${rule.severity}`;

/** The thresholds bot's own parameters (bots/README.md, Thresholds): each default limit, and the persistence of advice. */
export const THRESHOLD_DEFAULTS: Parameters = {
  ...Object.fromEntries(DEFAULT_LIMITS.map((rule) => [limitParameter(rule), rule.limit])),
  adviceCount: TWO_OF_LAST_THREE_IN_30_MIN.count,
  adviceOf: TWO_OF_LAST_THREE_IN_30_MIN.of,
  adviceWithinMinutes: TWO_OF_LAST_THREE_IN_30_MIN.withinMinutes,
};

/** A longer window would make every breach read that much history; older readings are past monitoring anyway. */
const MAX_WINDOW_MINUTES = MONITORING_HORIZON_MS / 60_000;

export interface ThresholdSettings {
  options: ThresholdOptions;
  /** The settings left out for their built-in default, and why: the run's AuditEvent says so. */
  ignored: string[];
}

/**
 * The limits and advice persistence in force for a run's parameters (the bot's defaults overridden
 * by organisation, then patient settings). An invalid value is ignored for its built-in default
 * rather than failing the run: a typing error in an organisation's setting must not silence the
 * alerts of all its patients, nor fail `accepts`, which would hold up every bot's changes.
 */
export function thresholdSettings(parameters: Parameters): ThresholdSettings {
  const given = { ...THRESHOLD_DEFAULTS, ...parameters };
  const ignored: string[] = [];
  const advice = advicePersistence(given, ignored);
  const limits = DEFAULT_LIMITS.map((rule) => ({
    ...rule,
    limit: limitOf(rule, given, ignored),
    persistence: rule.severity === 'advice' ? advice : rule.persistence,
  }));
  return { options: { limits, advice }, ignored };
}

/** The rule's limit in force: the setting, unless no reading could have it (it would never, or always, fire). */
function limitOf(rule: LimitRule, parameters: Parameters, ignored: string[]): number {
  const name = limitParameter(rule);
  const value = parameters[name];
  const { min, max } = PLAUSIBLE[rule.measure];
  if (typeof value === 'number' && value >= min && value <= max) return value;
  const unit = DISPLAY_UNIT[rule.measure];
  ignored.push(`${name} ${JSON.stringify(value)} ignored (a number from ${min} to ${max} ${unit}): the limit is ${rule.limit} ${unit}`);
  return rule.limit;
}

const isWhole = (value: unknown, min: number): value is number => typeof value === 'number' && Number.isInteger(value) && value >= min;

/** Advice needs `adviceCount` of the last `adviceOf` measurements within `adviceWithinMinutes`. */
function advicePersistence(parameters: Parameters, ignored: string[]): Persistence {
  const { adviceCount: count, adviceOf: of, adviceWithinMinutes: withinMinutes } = parameters;
  const ignore = (problem: string): Persistence => {
    const { count: c, of: o, withinMinutes: w } = TWO_OF_LAST_THREE_IN_30_MIN;
    ignored.push(`advice persistence ${JSON.stringify([count, of, withinMinutes])} ignored (${problem}): advice needs ${c} of ${o} within ${w} min`);
    return TWO_OF_LAST_THREE_IN_30_MIN;
  };
  if (!isWhole(count, 1)) return ignore('adviceCount must be a whole number of at least 1');
  if (!isWhole(of, count)) return ignore('adviceOf must be a whole number of at least adviceCount');
  if (typeof withinMinutes !== 'number' || !(withinMinutes > 0 && withinMinutes <= MAX_WINDOW_MINUTES)) {
    return ignore(`adviceWithinMinutes must be more than 0 and at most ${MAX_WINDOW_MINUTES}`);
  }
  // 1 of 1 is the reading alone, as for urgent: it fires at once and reads no history
  if (count === 1 && of === 1) return AT_ONCE;
  return { count, of, withinMinutes, spanMinutes: TWO_OF_LAST_THREE_IN_30_MIN.spanMinutes };
}
