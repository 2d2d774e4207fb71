/**
 * Robust location and scale: the median and the median absolute deviation (MAD). One odd day
 * (a fever, a loose strap) moves neither, where it would drag a mean and a standard deviation.
 */

/** MAD × 1.4826 estimates the standard deviation of normally distributed values. */
export const MAD_TO_SD = 1.4826;

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function mad(values: readonly number[], centre = median(values)): number {
  return median(values.map((v) => Math.abs(v - centre)));
}

/** The nearest-rank percentile (0 < p ≤ 100): always one of the values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError('percentile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}
