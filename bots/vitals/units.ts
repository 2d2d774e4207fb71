import type { Quantity } from '@medplum/fhirtypes';
import { UCUM } from './codes.ts';
import { CANONICAL_UNIT, MEASURE_LABEL, type QuantityMeasure } from './reading.ts';

type Convert = (value: number) => number;

const same: Convert = (v) => v;
const perMinute: Record<string, Convert> = { '/min': same, '1/min': same, 'beats/min': same, bpm: same, 'breaths/min': same };
const mmHg: Record<string, Convert> = {
  'mm[Hg]': same,
  mmHg: same, // the common non-UCUM spelling
  kPa: (v) => (v * 1000) / 133.322387415, // UCUM: 1 mm[Hg] = 133.322387415 Pa
};

/**
 * Units accepted per measure, after UCUM annotations are dropped (`{beats}/min` is `/min`). Besides
 * UCUM codes, the usual display spellings devices put in Quantity.unit are accepted.
 */
const UNITS: Record<QuantityMeasure, Record<string, Convert>> = {
  respiratoryRate: perMinute,
  pulse: perMinute,
  // A fraction is accepted only when labelled as one (UCUM "1"). A "%" value is taken as written:
  // 0.95 % is not silently read as 95 %, it fails the plausibility check instead, because guessing
  // the sender's intent could turn a broken device into a reassuring reading.
  spo2: { '%': same, '1': (v) => v * 100 },
  systolic: mmHg,
  diastolic: mmHg,
  temperature: {
    Cel: same,
    '°C': same,
    '[degF]': (v) => ((v - 32) * 5) / 9,
    '°F': (v) => ((v - 32) * 5) / 9,
    K: (v) => v - 273.15,
  },
  oxygenFlow: { 'L/min': same, 'l/min': same, 'mL/min': (v) => v / 1000, 'ml/min': (v) => v / 1000 },
  weight: {
    kg: same,
    g: (v) => v / 1000,
    '[lb_av]': (v) => v * 0.45359237,
    lb: (v) => v * 0.45359237,
    lbs: (v) => v * 0.45359237,
  },
};

/** The unit as written: the UCUM code when the quantity has one, else the display unit. */
function unitOf(q: Quantity): string | undefined {
  const code = q.system === UCUM || q.system === undefined ? q.code : undefined;
  return (code ?? q.unit)?.trim();
}

/** The quantity's value in the measure's canonical unit, or why it cannot be had. */
export function toCanonical(measure: QuantityMeasure, q: Quantity): { value: number } | { reason: string } {
  const label = MEASURE_LABEL[measure];
  if (typeof q.value !== 'number' || !Number.isFinite(q.value)) return { reason: `${label} has no numeric value` };
  const unit = unitOf(q);
  if (!unit) return { reason: `${label} ${q.value} has no unit` };
  // UCUM annotations carry no meaning: {beats}/min is /min, %{saturation} is %.
  const units = UNITS[measure];
  const key = unit.replace(/\{[^}]*\}/g, '') || unit;
  // Own keys only: a unit such as `constructor` must not find Object.prototype's.
  const convert = Object.hasOwn(units, key) ? units[key] : undefined;
  if (!convert) return { reason: `${label} unit '${unit}' cannot be converted to ${CANONICAL_UNIT[measure]}` };
  // Conversion noise (98.6 [degF] → 37.00000000000001) must not move a value across a table cut-off.
  return { value: Number(convert(q.value).toPrecision(12)) };
}
