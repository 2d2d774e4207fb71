import type { Reading } from './reading.ts';

/**
 * Readings in time order, each counted once. A re-sent or re-read Observation (same id) or a
 * duplicate from a second device path (same measure, time and value) must not count twice
 * towards persistence. Of duplicates the one given last wins, so a caller that appends the
 * triggering reading after the stored history gets the newest version of that Observation.
 */
export function orderReadings<T extends Reading>(readings: readonly T[]): T[] {
  const seen = new Set<string>();
  const kept: T[] = [];
  for (let i = readings.length - 1; i >= 0; i--) {
    const r = readings[i];
    // A blood-pressure panel gives a systolic and a diastolic reading with one id: key on measure too.
    const byId = `id|${r.measure}|${r.observationId}`;
    const byValue = `value|${r.measure}|${r.time}|${r.value}`;
    if (seen.has(byId) || seen.has(byValue)) continue;
    seen.add(byId).add(byValue);
    kept.push(r);
  }
  // Array.prototype.sort is stable: equal times keep the given order.
  return kept.reverse().sort((a, b) => a.time - b.time);
}
