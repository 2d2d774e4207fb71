import type { Observation, Patient, Reference } from '@medplum/fhirtypes';
import { dayOf } from '../calendar/zone.ts';
import { LOINC, UCUM } from '../vitals/codes.ts';
import { orderReadings } from '../vitals/order.ts';
import { CANONICAL_UNIT, roundTo, type QuantityReading } from '../vitals/reading.ts';
import { METHODS, type BaselineMeasure, type DayValue } from './assess.ts';

/** Vigil's daily values (fhir-profiles/CodeSystem-daily-summary.json). */
export const DAILY_SYSTEM = 'https://vigil.health/fhir/CodeSystem/daily-summary';
/** One daily value per patient, measure and day: `<patient>/<measure code>/<day>`. */
export const DAILY_KEY = 'urn:vigil:daily-summary';
/** LOINC "Heart rate --resting", beside Vigil's own code, so other systems recognise it. */
const RESTING_HEART_RATE = { system: LOINC, code: '40443-4', display: 'Heart rate --resting' };

const MEASURE_BY_CODE = new Map(Object.entries(METHODS).map(([measure, m]) => [m.code, measure as BaselineMeasure]));

export interface Day {
  day: string;
  value: number;
  readings: number;
}

/** The readings of one measure, each counted once, grouped by day in the zone, as daily values. */
export function summariseDays(measure: BaselineMeasure, readings: readonly QuantityReading[], timeZone: string): Day[] {
  const byDay = new Map<string, number[]>();
  for (const r of orderReadings(readings.filter((x) => x.measure === measure))) {
    const day = dayOf(r.time, timeZone);
    let values = byDay.get(day);
    if (!values) byDay.set(day, (values = []));
    values.push(r.value);
  }
  return [...byDay]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([day, values]) => ({ day, value: METHODS[measure].daily(values), readings: values.length }));
}

/** The daily value's identifier value (system DAILY_KEY). */
export const dailyKey = (patientId: string, measure: BaselineMeasure, day: string): string => `${patientId}/${METHODS[measure].code}/${day}`;

/**
 * A day's value as an Observation, coded with Vigil's daily-summary code only: it must not pass
 * for a reading, or the reading bots would score it.
 */
export function dailyObservation(patient: Reference<Patient>, measure: BaselineMeasure, day: Day, bounds: { start: number; end: number }): Observation {
  const method = METHODS[measure];
  const unit = CANONICAL_UNIT[measure];
  const how = measure === 'pulse' ? '10th percentile' : 'median';
  return {
    resourceType: 'Observation',
    identifier: [{ system: DAILY_KEY, value: dailyKey(patient.reference?.split('/')[1] as string, measure, day.day) }],
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }] }],
    code: { coding: [{ system: DAILY_SYSTEM, code: method.code }, ...(measure === 'pulse' ? [RESTING_HEART_RATE] : [])], text: method.label },
    subject: patient,
    effectivePeriod: { start: new Date(bounds.start).toISOString(), end: new Date(bounds.end).toISOString() },
    valueQuantity: { value: roundTo(day.value, 2), unit, system: UCUM, code: unit },
    note: [{ text: `${how} of ${day.readings} reading${day.readings === 1 ? '' : 's'} on ${day.day}` }],
  };
}

/** A stored daily value: its measure and day (from the identifier, which names the day in the patient's zone). */
export function readDaily(o: Observation): { measure: BaselineMeasure; value: DayValue } | undefined {
  const key = o.identifier?.find((i) => i.system === DAILY_KEY)?.value?.split('/');
  const measure = key && MEASURE_BY_CODE.get(key[1]);
  if (!key || !measure || o.valueQuantity?.value === undefined || o.status === 'entered-in-error') return undefined;
  return { measure, value: { day: key[2], value: o.valueQuantity.value, observationId: o.id } };
}

export const dailyCodes = (): string[] => Object.values(METHODS).map((m) => `${DAILY_SYSTEM}|${m.code}`);
