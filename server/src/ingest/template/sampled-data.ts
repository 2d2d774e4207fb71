/**
 * SampledData as a time grid: slot i holds the reading at start + i × period, `E` where there is
 * none. Two readings in one slot: the later one wins, as in MedTech.
 */

/** Bounds one Observation's grid (about 0.5 MB of text), so no message can make it unbounded. */
export const MAX_SLOTS = 100_000;

export interface Sample {
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly value: string;
}

/** The grid's data text, or undefined when it would exceed MAX_SLOTS. `end` is exclusive for buckets. */
export function encodeGrid(samples: readonly Sample[], start: number, end: number, period: number): string | undefined {
  const index = (t: number) => Math.floor((t - start) / period);
  const last = samples.reduce((max, s) => Math.max(max, index(s.time)), -1);
  const slots = Math.max(Math.ceil((end - start) / period), last + 1, 1);
  if (slots > MAX_SLOTS) return undefined;
  const data = new Array<string>(slots).fill('E');
  for (const s of [...samples].sort((a, b) => a.time - b.time)) {
    const i = index(s.time);
    if (i >= 0) data[i] = s.value;
  }
  return data.join(' ');
}

/** The readings a grid holds; `E` (no value) slots are skipped. */
export function decodeGrid(data: string, start: number, period: number): Sample[] {
  const samples: Sample[] = [];
  data
    .split(/\s+/)
    .filter((token) => token !== '')
    .forEach((value, i) => {
      if (value !== 'E') samples.push({ time: start + i * period, value });
    });
  return samples;
}
