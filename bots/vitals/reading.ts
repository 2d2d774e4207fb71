/**
 * A reading is one measured value taken from an Observation, already converted to the canonical
 * unit of its measure, so the scoring and threshold rules never deal with units or FHIR shapes.
 */
export type QuantityMeasure =
  | 'respiratoryRate'
  | 'spo2'
  | 'systolic'
  | 'diastolic'
  | 'pulse'
  | 'temperature'
  | 'oxygenFlow'
  | 'weight';
export type Measure = QuantityMeasure | 'consciousness';

/** ACVPU: alert, new confusion, responds to voice, responds to pain, unresponsive. */
export type Acvpu = 'alert' | 'confusion' | 'voice' | 'pain' | 'unresponsive';

interface ReadingBase {
  /** Effective time, epoch milliseconds. */
  time: number;
  /** The Observation it came from; a blood-pressure panel yields two readings with the same id. */
  observationId: string;
}
export interface QuantityReading extends ReadingBase {
  measure: QuantityMeasure;
  value: number;
  /** Always CANONICAL_UNIT[measure]. */
  unit: string;
}
export interface ConsciousnessReading extends ReadingBase {
  measure: 'consciousness';
  value: Acvpu;
}
export type Reading = QuantityReading | ConsciousnessReading;

/** UCUM codes. */
export const CANONICAL_UNIT: Record<QuantityMeasure, string> = {
  respiratoryRate: '/min',
  spo2: '%',
  systolic: 'mm[Hg]',
  diastolic: 'mm[Hg]',
  pulse: '/min',
  temperature: 'Cel',
  oxygenFlow: 'L/min',
  weight: 'kg',
};

/** How the unit is written for people, in alert texts and rejection reasons. */
export const DISPLAY_UNIT: Record<QuantityMeasure, string> = {
  ...CANONICAL_UNIT,
  systolic: 'mmHg',
  diastolic: 'mmHg',
  temperature: '°C',
};

export const MEASURE_LABEL: Record<Measure, string> = {
  respiratoryRate: 'respiratory rate',
  spo2: 'SpO2',
  systolic: 'systolic blood pressure',
  diastolic: 'diastolic blood pressure',
  pulse: 'pulse',
  temperature: 'temperature',
  oxygenFlow: 'inhaled oxygen flow rate',
  weight: 'body weight',
  consciousness: 'consciousness (ACVPU)',
};

/**
 * Decimal places of the clinical tables (NEWS2, home thresholds): temperature is charted to 0.1 °C,
 * the others in whole units. Rules compare values rounded to this precision, so a reading between
 * two rows of a table (SpO2 93.5 %, temperature 35.05 °C) falls in exactly one row.
 */
const TABLE_DECIMALS: Record<QuantityMeasure, number> = {
  respiratoryRate: 0,
  spo2: 0,
  systolic: 0,
  diastolic: 0,
  pulse: 0,
  temperature: 1,
  oxygenFlow: 1,
  weight: 1,
};

/** Round half up to the table's precision (93.5 → 94, 35.05 → 35.1), immune to binary float noise. */
export function roundForTable(measure: QuantityMeasure, value: number): number {
  return roundTo(value, TABLE_DECIMALS[measure]);
}

/** The value as charted, for texts: `35.0 °C`, not `35 °C`. */
export function formatForTable(measure: QuantityMeasure, value: number): string {
  return roundForTable(measure, value).toFixed(TABLE_DECIMALS[measure]);
}

export function roundTo(value: number, decimals: number): number {
  const scale = 10 ** decimals;
  // 35.05 * 10 is 350.49999999999994 in binary; trimming to 12 significant digits restores 350.5.
  return Math.round(Number((value * scale).toPrecision(12))) / scale;
}
