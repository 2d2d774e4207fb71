import type { CodeableConcept, Observation, Quantity } from '@medplum/fhirtypes';
import { ACVPU_BY_CODING, BP_PANEL, LOINC, MEASURE_BY_LOINC } from './codes.ts';
import { implausibility } from './plausible.ts';
import { CANONICAL_UNIT, MEASURE_LABEL, type Acvpu, type Measure, type QuantityMeasure, type QuantityReading, type Reading } from './reading.ts';
import { toCanonical } from './units.ts';

/**
 * What an Observation means to the monitoring rules: readings; a rejection, with the reason to
 * record in an AuditEvent (the Observation is about a measure Vigil scores but must never alert);
 * or nothing, when it is not about a measure Vigil scores.
 */
export type Normalised =
  | { kind: 'readings'; readings: Reading[] }
  | { kind: 'rejected'; reason: string }
  | { kind: 'ignored' };

/** Statuses whose Observation carries no usable result. */
const UNUSABLE_STATUS: ReadonlyMap<string, string> = new Map([
  ['entered-in-error', 'Observation status is entered-in-error'],
  ['cancelled', 'Observation status is cancelled'],
  ['registered', 'Observation status is registered (no result yet)'],
]);

/**
 * What frozen Observations normalise to: a store may share one parsed Observation between runs (a
 * patient's window rows), and a frozen one cannot change, so its meaning is worked out once.
 */
const FROZEN = new WeakMap<Observation, Normalised>();

export function normaliseObservation(observation: Observation): Normalised {
  if (!Object.isFrozen(observation)) return normalise(observation);
  let normalised = FROZEN.get(observation);
  if (!normalised) {
    normalised = normalise(observation);
    // shared like the Observation, so frozen like it
    if (normalised.kind === 'readings') Object.freeze(normalised.readings).forEach((r) => Object.freeze(r));
    FROZEN.set(observation, Object.freeze(normalised));
  }
  return normalised;
}

function normalise(observation: Observation): Normalised {
  const measure = isCoded(observation.code, BP_PANEL) ? 'bloodPressure' : measureOf(observation.code);
  if (!measure) return { kind: 'ignored' };
  const unusable = UNUSABLE_STATUS.get(observation.status);
  if (unusable) return rejected(unusable);
  if (!observation.id) return rejected('Observation has no id to cite as evidence');
  const time = effectiveTime(observation);
  if (typeof time === 'string') return rejected(time);
  const base = { time, observationId: observation.id };

  if (measure === 'bloodPressure') return bloodPressure(observation, base);
  if (observation.dataAbsentReason) return rejected(absent(MEASURE_LABEL[measure], observation.dataAbsentReason));
  if (measure === 'consciousness') {
    const value = acvpuOf(observation.valueCodeableConcept);
    if (!value) return rejected('consciousness value is not a recognised ACVPU code');
    return { kind: 'readings', readings: [{ measure, value, ...base }] };
  }
  const reading = quantityReading(measure, observation.valueQuantity, base);
  return typeof reading === 'string' ? rejected(reading) : { kind: 'readings', readings: [reading] };
}

function rejected(reason: string): Normalised {
  return { kind: 'rejected', reason };
}

function absent(label: string, reason: CodeableConcept): string {
  return `${label} has no value (dataAbsentReason ${reason.coding?.[0]?.code ?? reason.text ?? 'given'})`;
}

function isCoded(concept: CodeableConcept | undefined, code: string): boolean {
  return concept?.coding?.some((c) => c.system === LOINC && c.code === code) ?? false;
}

function measureOf(concept: CodeableConcept | undefined): Measure | undefined {
  for (const c of concept?.coding ?? []) {
    const measure = c.system === LOINC && c.code ? MEASURE_BY_LOINC.get(c.code) : undefined;
    if (measure) return measure;
  }
  return undefined;
}

function acvpuOf(concept: CodeableConcept | undefined): Acvpu | undefined {
  for (const c of concept?.coding ?? []) {
    const value = ACVPU_BY_CODING.get(`${c.system}|${c.code}`);
    if (value) return value;
  }
  return undefined;
}

/**
 * Epoch ms of the reading: effective[x] (a period's end: the measurement is complete then), else
 * `issued`. A date without a time of day cannot be placed in a scoring window, so it is refused.
 */
export function effectiveTime(observation: Observation): number | string {
  const when =
    observation.effectiveDateTime ??
    observation.effectiveInstant ??
    observation.effectivePeriod?.end ??
    observation.effectivePeriod?.start ??
    observation.issued;
  if (!when) return 'Observation has no effective time';
  if (!/T\d\d:\d\d/.test(when)) return `effective time '${when}' has no time of day`;
  const time = Date.parse(when);
  return Number.isNaN(time) ? `effective time '${when}' is not a valid dateTime` : time;
}

function quantityReading(
  measure: QuantityMeasure,
  quantity: Quantity | undefined,
  base: { time: number; observationId: string },
): QuantityReading | string {
  const label = MEASURE_LABEL[measure];
  if (!quantity) return `${label} value is not a Quantity`;
  const converted = toCanonical(measure, quantity);
  if ('reason' in converted) return converted.reason;
  const wrong = implausibility(measure, converted.value);
  if (wrong) return converted.value === quantity.value ? wrong : `${wrong}; sent as ${quantity.value} ${quantity.code ?? quantity.unit}`;
  return { measure, value: converted.value, unit: CANONICAL_UNIT[measure], ...base };
}

/**
 * A panel gives a systolic and/or a diastolic reading. A component declared absent is skipped (a
 * Doppler measures systolic only), but a wrong one rejects the whole panel: one cuff measurement
 * produced both numbers, so one wrong number discredits the other.
 */
function bloodPressure(observation: Observation, base: { time: number; observationId: string }): Normalised {
  const readings: QuantityReading[] = [];
  for (const component of observation.component ?? []) {
    const measure = measureOf(component.code);
    if ((measure !== 'systolic' && measure !== 'diastolic') || component.dataAbsentReason) continue;
    const reading = quantityReading(measure, component.valueQuantity, base);
    if (typeof reading === 'string') return rejected(reading);
    readings.push(reading);
  }
  if (readings.length === 0) return rejected('blood pressure panel has no systolic or diastolic value');
  const systolic = readings.find((r) => r.measure === 'systolic');
  const diastolic = readings.find((r) => r.measure === 'diastolic');
  if (systolic && diastolic && diastolic.value >= systolic.value) {
    return rejected(`diastolic ${diastolic.value} mmHg is not below systolic ${systolic.value} mmHg`);
  }
  return { kind: 'readings', readings };
}
