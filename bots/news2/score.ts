import { roundForTable, type Acvpu, type QuantityMeasure } from '../vitals/reading.ts';

/**
 * NEWS2 scoring exactly as charted by the Royal College of Physicians (2017). Measured values are
 * first rounded half up to the chart's precision (whole units; temperature to 0.1 °C), so every
 * value lands in exactly one row: SpO2 93.5 % is charted as 94, temperature 35.05 °C as 35.1.
 */

/** In the order of the RCP chart. */
export const NEWS2_PARAMETERS = ['respiratoryRate', 'spo2', 'airOrOxygen', 'systolic', 'pulse', 'consciousness', 'temperature'] as const;
export type News2Parameter = (typeof NEWS2_PARAMETERS)[number];

/** RCP clinical risk: 0–4 low; a 3 in any one parameter low–medium; 5–6 medium; 7 or more high. */
export type News2Band = 'low' | 'low-medium' | 'medium' | 'high';

export interface News2Inputs {
  respiratoryRate: number;
  spo2: number;
  onOxygen: boolean;
  systolic: number;
  pulse: number;
  consciousness: Acvpu;
  temperature: number;
  /** SpO2 scale 2: the patient's prescribed target range is 88–92 % (hypercapnic respiratory failure). */
  scale2: boolean;
}

export interface News2Score {
  total: number;
  band: News2Band;
  scale: 1 | 2;
  subscores: Record<News2Parameter, number>;
}

/** Rows of a chart: the points for values up to and including `upTo`, first matching row wins. */
type Chart = readonly (readonly [upTo: number, points: number])[];

const RESPIRATORY_RATE: Chart = [[8, 3], [11, 1], [20, 0], [24, 2], [Infinity, 3]];
const SPO2_SCALE_1: Chart = [[91, 3], [93, 2], [95, 1], [Infinity, 0]];
const SPO2_SCALE_2: Chart = [[83, 3], [85, 2], [87, 1], [92, 0]];
/** Scale 2 at 93 % or more, on oxygen; on air these score 0. */
const SPO2_SCALE_2_ON_OXYGEN: Chart = [[94, 1], [96, 2], [Infinity, 3]];
const SYSTOLIC: Chart = [[90, 3], [100, 2], [110, 1], [219, 0], [Infinity, 3]];
const PULSE: Chart = [[40, 3], [50, 1], [90, 0], [110, 1], [130, 2], [Infinity, 3]];
const TEMPERATURE: Chart = [[35.0, 3], [36.0, 1], [38.0, 0], [39.0, 1], [Infinity, 2]];

function chart(table: Chart, measure: QuantityMeasure, value: number): number {
  const charted = roundForTable(measure, value);
  const row = table.find(([upTo]) => charted <= upTo);
  if (!row) throw new RangeError(`${measure} ${value} is beyond its NEWS2 chart`);
  return row[1];
}

export const scoreRespiratoryRate = (value: number): number => chart(RESPIRATORY_RATE, 'respiratoryRate', value);
export const scoreSystolic = (value: number): number => chart(SYSTOLIC, 'systolic', value);
export const scorePulse = (value: number): number => chart(PULSE, 'pulse', value);
export const scoreTemperature = (value: number): number => chart(TEMPERATURE, 'temperature', value);
export const scoreAirOrOxygen = (onOxygen: boolean): number => (onOxygen ? 2 : 0);
export const scoreConsciousness = (value: Acvpu): number => (value === 'alert' ? 0 : 3);

export function scoreSpo2(value: number, scale2: boolean, onOxygen: boolean): number {
  if (!scale2) return chart(SPO2_SCALE_1, 'spo2', value);
  if (roundForTable('spo2', value) <= 92) return chart(SPO2_SCALE_2, 'spo2', value);
  return onOxygen ? chart(SPO2_SCALE_2_ON_OXYGEN, 'spo2', value) : 0;
}

export function news2Band(total: number, subscores: Record<News2Parameter, number>): News2Band {
  if (total >= 7) return 'high';
  if (total >= 5) return 'medium';
  return Object.values(subscores).includes(3) ? 'low-medium' : 'low';
}

export function scoreNews2(inputs: News2Inputs): News2Score {
  const subscores: Record<News2Parameter, number> = {
    respiratoryRate: scoreRespiratoryRate(inputs.respiratoryRate),
    spo2: scoreSpo2(inputs.spo2, inputs.scale2, inputs.onOxygen),
    airOrOxygen: scoreAirOrOxygen(inputs.onOxygen),
    systolic: scoreSystolic(inputs.systolic),
    pulse: scorePulse(inputs.pulse),
    consciousness: scoreConsciousness(inputs.consciousness),
    temperature: scoreTemperature(inputs.temperature),
  };
  const total = Object.values(subscores).reduce((sum, points) => sum + points, 0);
  return { total, band: news2Band(total, subscores), scale: inputs.scale2 ? 2 : 1, subscores };
}
