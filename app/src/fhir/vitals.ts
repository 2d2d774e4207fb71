import type { Observation } from '@medplum/fhirtypes';

export const LOINC = 'http://loinc.org';
export const NEWS2_SYSTEM = 'http://snomed.info/sct';
export const NEWS2_CODE = '1104051000000101';

/** A vital sign the app shows: how to find it, name it, and the usual adult range for home monitoring. */
export interface Vital {
  key: string;
  label: string;
  /** What a patient reads. */
  plain: string;
  unit: string;
  /** LOINC codes whose own value is this vital. */
  codes: string[];
  /** For a component of a panel (blood pressure). */
  component?: { panel: string; code: string };
  normal: [number, number];
  decimals: number;
}

export const VITALS: Vital[] = [
  { key: 'pulse', label: 'Pulse', plain: 'Heart rate', unit: '/min', codes: ['8867-4'], normal: [51, 90], decimals: 0 },
  { key: 'spo2', label: 'SpO₂', plain: 'Blood oxygen', unit: '%', codes: ['2708-6', '59408-5'], normal: [96, 100], decimals: 0 },
  { key: 'systolic', label: 'Systolic BP', plain: 'Blood pressure (upper)', unit: 'mmHg', codes: ['8480-6'], component: { panel: '85354-9', code: '8480-6' }, normal: [111, 219], decimals: 0 },
  { key: 'diastolic', label: 'Diastolic BP', plain: 'Blood pressure (lower)', unit: 'mmHg', codes: ['8462-4'], component: { panel: '85354-9', code: '8462-4' }, normal: [60, 90], decimals: 0 },
  { key: 'resp', label: 'Resp. rate', plain: 'Breathing rate', unit: '/min', codes: ['9279-1'], normal: [12, 20], decimals: 0 },
  { key: 'temp', label: 'Temperature', plain: 'Temperature', unit: '°C', codes: ['8310-5'], normal: [36.1, 38], decimals: 1 },
  { key: 'weight', label: 'Weight', plain: 'Weight', unit: 'kg', codes: ['29463-7'], normal: [0, Infinity], decimals: 1 },
];

export const VITAL_BY_KEY = new Map(VITALS.map((v) => [v.key, v]));

/** What the charts ask `$timeseries`/`$lastn` for: the LOINC codes and the BP panel. */
export const VITAL_CODES = [...new Set(VITALS.flatMap((v) => (v.component ? [v.component.panel] : v.codes)))].map((c) => `${LOINC}|${c}`);

export interface Reading { vital: Vital; value: number; at: string; device?: string; observation: Observation }

/** The readings an Observation carries: its own value, or its components' (blood pressure). */
export function readingsOf(observation: Observation): Reading[] {
  const at = observation.effectiveDateTime ?? observation.effectivePeriod?.start ?? observation.issued;
  if (!at || observation.status === 'entered-in-error') return [];
  const codes = new Set((observation.code?.coding ?? []).filter((c) => c.system === LOINC).map((c) => c.code));
  const device = observation.device?.reference;
  const out: Reading[] = [];
  for (const vital of VITALS) {
    if (vital.component) {
      if (!codes.has(vital.component.panel) && !vital.codes.some((c) => codes.has(c))) continue;
      const own = vital.codes.some((c) => codes.has(c)) ? observation.valueQuantity?.value : undefined;
      const part = observation.component?.find((c) => c.code.coding?.some((k) => k.system === LOINC && k.code === vital.component?.code));
      const value = own ?? part?.valueQuantity?.value;
      if (value !== undefined) out.push({ vital, value, at, device, observation });
    } else if (vital.codes.some((c) => codes.has(c)) && observation.valueQuantity?.value !== undefined) {
      out.push({ vital, value: observation.valueQuantity.value, at, device, observation });
    }
  }
  return out;
}

/** The newest reading per vital among the given Observations. */
export function latestReadings(observations: Observation[]): Map<string, Reading> {
  const latest = new Map<string, Reading>();
  for (const reading of observations.flatMap(readingsOf)) {
    const current = latest.get(reading.vital.key);
    if (!current || reading.at > current.at) latest.set(reading.vital.key, reading);
  }
  return latest;
}

/** Whole years of age today, from a FHIR date. */
export function ageYears(birthDate: string, now = new Date()): number {
  const [y, m = 1, d = 1] = birthDate.split('-').map(Number);
  const birthdayPassed = now.getMonth() + 1 > m || (now.getMonth() + 1 === m && now.getDate() >= d);
  return now.getFullYear() - y - (birthdayPassed ? 0 : 1);
}

export const formatValue = (vital: Vital, value: number): string => value.toFixed(vital.decimals);

export const isNews2 = (observation: Observation): boolean =>
  !!observation.code?.coding?.some((c) => c.code === NEWS2_CODE);

export const outsideNormal = (vital: Vital, value: number): boolean => value < vital.normal[0] || value > vital.normal[1];
