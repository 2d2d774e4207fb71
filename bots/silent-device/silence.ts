import { median } from '../vitals/robust.ts';

/**
 * Whether a device has gone quiet (bots/README.md, "Silent device"). A device is watched only if
 * it reported regularly: at least `minReports` reports in the day before its last one, usually
 * less than a quarter of `silentAfterMs` apart. A blood-pressure cuff used twice a day is not
 * expected to report every few hours; a wearable is.
 */
export interface SilenceOptions {
  silentAfterMs: number;
  minReports: number;
}

export type Silence =
  | { kind: 'never-reported' }
  | { kind: 'reporting'; last: number }
  | { kind: 'irregular'; last: number }
  | { kind: 'silent'; last: number; since: number; typicalGapMs: number };

const DAY = 86_400_000;

/** `times`: when the device's recent reports were taken, any order, duplicates allowed. */
export function deviceSilence(times: readonly number[], now: number, options: SilenceOptions): Silence {
  if (times.length === 0) return { kind: 'never-reported' };
  const last = Math.max(...times);
  if (now - last < options.silentAfterMs) return { kind: 'reporting', last };
  const recent = [...new Set(times.filter((t) => t > last - DAY))].sort((a, b) => a - b);
  if (recent.length < options.minReports) return { kind: 'irregular', last };
  const typicalGapMs = median(recent.slice(1).map((t, i) => t - recent[i]));
  if (typicalGapMs > options.silentAfterMs / 4) return { kind: 'irregular', last };
  return { kind: 'silent', last, since: last + options.silentAfterMs, typicalGapMs };
}
