import { addDays, daysBetween } from '../calendar/zone.ts';
import { DISPLAY_UNIT, formatForTable, type QuantityMeasure } from '../vitals/reading.ts';
import { MAD_TO_SD, mad, median, percentile } from '../vitals/robust.ts';

/**
 * Personal baseline (bots/README.md): each day's value of a measure is compared with the same
 * patient's days before it, as a robust z-score z = (value − median) / max(1.4826 · MAD, floor)
 * over the preceding `windowDays` days. A day deviates when |z| ≥ `zAlert`, or when at least
 * `persistentDays` of the last `ofDays` days have |z| ≥ `zPersistent` in the same direction.
 */
export type BaselineMeasure = Exclude<QuantityMeasure, 'oxygenFlow'>;
export type Direction = 'high' | 'low';

export interface MeasureMethod {
  /** Code of the daily value in the daily-summary CodeSystem. */
  code: string;
  label: string;
  /** A day's readings → the day's value. */
  daily(values: readonly number[]): number;
  /** Deviations that matter: SpO2 above one's usual is never a concern. */
  directions: readonly Direction[];
  /**
   * The least robust SD, about the measurement's resolution: a patient whose weight never moved
   * has a MAD of 0, and 0.1 kg would otherwise be an infinite deviation.
   */
  minSd: number;
}

/**
 * Resting heart rate is the day's 10th percentile of pulse readings: a wearable's day includes
 * activity and sleep, and the low readings are the resting ones (with fewer than ten, the lowest).
 * Other measures take the day's median.
 */
const p10 = (values: readonly number[]) => percentile(values, 10);
const both: readonly Direction[] = ['high', 'low'];
export const METHODS: Record<BaselineMeasure, MeasureMethod> = {
  pulse: { code: 'resting-heart-rate', label: 'resting heart rate', daily: p10, directions: both, minSd: 1 },
  spo2: { code: 'spo2', label: 'daily median SpO2', daily: median, directions: ['low'], minSd: 0.5 },
  respiratoryRate: { code: 'respiratory-rate', label: 'daily median respiratory rate', daily: median, directions: both, minSd: 1 },
  systolic: { code: 'systolic', label: 'daily median systolic blood pressure', daily: median, directions: both, minSd: 2 },
  diastolic: { code: 'diastolic', label: 'daily median diastolic blood pressure', daily: median, directions: both, minSd: 2 },
  temperature: { code: 'temperature', label: 'daily median body temperature', daily: median, directions: both, minSd: 0.1 },
  weight: { code: 'weight', label: 'daily median body weight', daily: median, directions: both, minSd: 0.2 },
};
export const BASELINE_MEASURES = Object.keys(METHODS) as BaselineMeasure[];

export interface BaselineOptions {
  windowDays: number;
  minDays: number;
  zAlert: number;
  zPersistent: number;
  persistentDays: number;
  ofDays: number;
}

export const BASELINE_DEFAULTS: BaselineOptions = { windowDays: 28, minDays: 7, zAlert: 3, zPersistent: 2, persistentDays: 2, ofDays: 3 };

/** One day's value of a measure (`YYYY-MM-DD` in the patient's time zone). */
export interface DayValue {
  day: string;
  value: number;
  /** The daily-summary Observation, cited as evidence. */
  observationId?: string;
}

export interface DayScore extends DayValue {
  z: number;
  median: number;
  sd: number;
  /** Days the baseline was made from. */
  days: number;
}

export type BaselineAssessment =
  | { kind: 'learning'; days: number }
  | { kind: 'within'; latest: DayScore }
  | { kind: 'deviation'; direction: Direction; latest: DayScore; evidence: DayScore[]; text: string };

/** The day scored against the days in the window before it; undefined while too few. */
export function scoreDay(measure: BaselineMeasure, series: readonly DayValue[], day: DayValue, options: BaselineOptions = BASELINE_DEFAULTS): DayScore | undefined {
  const before = series.filter((d) => {
    const ago = daysBetween(d.day, day.day);
    return ago >= 1 && ago <= options.windowDays;
  });
  if (before.length < options.minDays) return undefined;
  const values = before.map((d) => d.value);
  const centre = median(values);
  const sd = Math.max(MAD_TO_SD * mad(values, centre), METHODS[measure].minSd);
  return { ...day, z: (day.value - centre) / sd, median: centre, sd, days: before.length };
}

/** Assesses the latest day of `series` (one value per day, any order). */
export function assessBaseline(measure: BaselineMeasure, series: readonly DayValue[], options: BaselineOptions = BASELINE_DEFAULTS): BaselineAssessment {
  const ordered = [...series].sort((a, b) => a.day.localeCompare(b.day));
  const last = ordered.at(-1);
  if (!last) return { kind: 'learning', days: 0 };
  const latest = scoreDay(measure, ordered, last, options);
  if (!latest) return { kind: 'learning', days: ordered.filter((d) => d !== last && daysBetween(d.day, last.day) <= options.windowDays).length };
  const from = addDays(last.day, -(options.ofDays - 1));
  const recent = ordered
    .filter((d) => d.day >= from)
    .map((d) => (d === last ? latest : scoreDay(measure, ordered, d, options)))
    .filter((s): s is DayScore => s !== undefined);
  for (const direction of METHODS[measure].directions) {
    const sign = direction === 'high' ? 1 : -1;
    const hits = recent.filter((s) => sign * s.z >= options.zPersistent);
    const single = sign * latest.z >= options.zAlert;
    const persistent = hits.length >= options.persistentDays;
    if (!single && !persistent) continue;
    const evidence = single && !persistent ? [latest] : hits;
    return { kind: 'deviation', direction, latest, evidence, text: describe(measure, direction, latest, evidence, persistent, options) };
  }
  return { kind: 'within', latest };
}

function describe(measure: BaselineMeasure, direction: Direction, latest: DayScore, evidence: DayScore[], persistent: boolean, options: BaselineOptions): string {
  const unit = DISPLAY_UNIT[measure];
  const label = METHODS[measure].label;
  const value = (s: DayScore) => `${formatForTable(measure, s.value)} ${unit}`;
  const z = (s: DayScore) => `z ${s.z >= 0 ? '+' : ''}${s.z.toFixed(1)}`;
  const baseline = `personal baseline ${formatForTable(measure, latest.median)} ${unit} (median of ${latest.days} days, robust SD ${latest.sd.toFixed(1)} ${unit})`;
  const capital = `${label[0].toUpperCase()}${label.slice(1)}`;
  if (!persistent) return `${capital} ${value(latest)} on ${latest.day} is ${Math.abs(latest.z).toFixed(1)} robust SD ${direction === 'high' ? 'above' : 'below'} the ${baseline}`;
  const days = evidence.map((s) => `${s.day}: ${value(s)}, ${z(s)}`).join('; ');
  return `${capital} ${direction === 'high' ? 'above' : 'below'} the ${baseline} on ${evidence.length} of the last ${options.ofDays} days (${days})`;
}
