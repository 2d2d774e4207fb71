import { DISPLAY_UNIT, MEASURE_LABEL, type QuantityMeasure } from './reading.ts';

/**
 * Physiologically possible values in a living patient at home, inclusive, in canonical units.
 * Outside them the reading is a device or entry error: it is rejected, never scored or alerted on.
 */
export const PLAUSIBLE: Record<QuantityMeasure, { min: number; max: number }> = {
  respiratoryRate: { min: 1, max: 80 },
  spo2: { min: 50, max: 100 },
  systolic: { min: 40, max: 300 },
  diastolic: { min: 20, max: 200 },
  pulse: { min: 1, max: 300 },
  temperature: { min: 25, max: 45 },
  oxygenFlow: { min: 0, max: 60 }, // 0 means on air; high-flow devices deliver up to 60 L/min
  weight: { min: 0.5, max: 500 },
};

/** Why the value cannot be real, or undefined when it can. */
export function implausibility(measure: QuantityMeasure, value: number): string | undefined {
  const { min, max } = PLAUSIBLE[measure];
  if (value >= min && value <= max) return undefined;
  const unit = DISPLAY_UNIT[measure];
  return `${MEASURE_LABEL[measure]} ${value} ${unit} is implausible (outside ${min}–${max} ${unit})`;
}
