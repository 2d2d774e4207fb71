import { createHash } from 'node:crypto';
import type { Extension, Observation, ObservationComponent } from '@medplum/fhirtypes';
import type { FhirTemplate, ValueTemplate } from './fhir-templates.ts';
import { cloneJson, defined } from './json.ts';
import { readingTimeExtension, supersedes, type TimedValue } from './reading-time.ts';
import { encodeGrid, type Sample } from './sampled-data.ts';
import type { Measurement, ObservationContext, ObservationsResult, Rejection } from './types.ts';
import { applyVitalSigns } from './vital-signs.ts';

/** Builds FHIR R4 Observations from measurements, one per identifier. */

export const IDENTIFIER_SYSTEM = 'urn:vigil:ingest';

type ValueElement = Pick<Observation, 'valueQuantity' | 'valueSampledData' | 'valueString' | 'valueCodeableConcept'>;

/** A value and, for a single value in a grouped Observation, the time of the reading it comes from. */
interface BuiltValue {
  readonly element: ValueElement;
  readonly extension?: Extension[];
}

interface Group {
  readonly template: FhirTemplate;
  readonly identifier: string;
  /** The bucket for periodic templates; correlation groups span their readings. */
  readonly bucket?: { readonly start: number; readonly end: number };
  readonly measurements: Measurement[];
}

/**
 * Same mapping, device, type and window (or correlation id) → same identifier, so a re-sent
 * reading lands on the Observation it already made.
 */
function identifierValue(mapping: string, deviceId: string, typeName: string, window: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify([mapping, deviceId, typeName, ...window])).digest('hex');
}

export function buildObservations(
  mapping: string,
  templates: ReadonlyMap<string, FhirTemplate>,
  measurements: readonly Measurement[],
  context: ObservationContext,
): ObservationsResult {
  const rejections: Rejection[] = [];
  const groups = new Map<string, Group>();
  const deviceId = measurements[0]?.deviceId;
  for (const m of measurements) {
    const template = templates.get(m.type);
    if (!template) {
      rejections.push({ typeName: m.type, reason: `no fhirMapping template for type ${JSON.stringify(m.type)}` });
      continue;
    }
    if (m.deviceId !== deviceId) {
      rejections.push({ typeName: m.type, reason: `measurement of device ${JSON.stringify(m.deviceId)} passed with another device's context; split with groupByIdentity` });
      continue;
    }
    const window = windowOf(template, m);
    if ('reason' in window) {
      rejections.push({ template: template.path, typeName: m.type, reason: window.reason });
      continue;
    }
    const identifier = identifierValue(mapping, m.deviceId, template.typeName, window.key);
    const group = groups.get(identifier) ?? { template, identifier, bucket: window.bucket, measurements: [] };
    group.measurements.push(m);
    groups.set(identifier, group);
  }

  const observations: Observation[] = [];
  const newest: number[] = [];
  for (const group of groups.values()) {
    const built = buildObservation(group, context);
    if (typeof built === 'string') {
      rejections.push({ template: group.template.path, typeName: group.template.typeName, reason: built });
    } else {
      observations.push(built);
      newest.push(group.measurements.reduce((max, m) => Math.max(max, (m.endTime ?? m.occurrenceTime).getTime()), -Infinity));
    }
  }
  return { observations, newest, rejections };
}

function windowOf(template: FhirTemplate, m: Measurement): { key: string[]; bucket?: { start: number; end: number } } | { reason: string } {
  const time = m.occurrenceTime.getTime();
  switch (template.periodInterval) {
    case 0:
      return { key: [m.occurrenceTime.toISOString(), (m.endTime ?? m.occurrenceTime).toISOString()] };
    case -1:
      if (!m.correlationId) return { reason: 'periodInterval -1 groups by correlation id, but the measurement has none' };
      return { key: ['correlation', m.correlationId] };
    default: {
      // UTC buckets: hours and days both align with the epoch.
      const length = template.periodInterval * 60_000;
      const start = Math.floor(time / length) * length;
      const bucket = { start, end: start + length };
      return { key: [new Date(start).toISOString(), new Date(bucket.end).toISOString()], bucket };
    }
  }
}

/** The Observation, or why it cannot be built. */
function buildObservation(group: Group, context: ObservationContext): Observation | string {
  const { template } = group;
  const sorted = [...group.measurements].sort((a, b) => a.occurrenceTime.getTime() - b.occurrenceTime.getTime());
  const start = group.bucket?.start ?? sorted[0]!.occurrenceTime.getTime();
  const end = group.bucket?.end ?? sorted.reduce((max, m) => Math.max(max, (m.endTime ?? m.occurrenceTime).getTime()), start);
  const samples = (valueName: string): Sample[] =>
    sorted.flatMap((m) => m.properties.filter((p) => p.name === valueName).map((p) => ({ time: m.occurrenceTime.getTime(), value: p.value })));

  const tooLarge = (): string => `the SampledData grid from ${new Date(start).toISOString()} to ${new Date(end).toISOString()} would exceed its size limit`;
  const grouped = template.periodInterval !== 0;
  let value: BuiltValue | undefined;
  const found = template.value ? samples(template.value.valueName) : [];
  if (template.value && found.length > 0) {
    value = valueOf(template.value, found, start, end, grouped);
    if (!value) return tooLarge();
  }
  const component: ObservationComponent[] = [];
  for (const c of template.components) {
    const componentSamples = samples(c.value.valueName);
    if (componentSamples.length === 0) continue;
    const built = valueOf(c.value, componentSamples, start, end, grouped);
    if (!built) return tooLarge();
    component.push(defined({ extension: built.extension, code: cloneJson(c.code), ...built.element }));
  }
  if (!value && component.length === 0) return "none of the template's values is present in the measurements";

  const instant = template.periodInterval === 0 && start === end;
  const observation: Observation = defined({
    resourceType: 'Observation',
    extension: value?.extension,
    identifier: [{ system: IDENTIFIER_SYSTEM, value: group.identifier }],
    status: 'final',
    category: template.category.length > 0 ? cloneJson([...template.category]) : undefined,
    code: cloneJson(template.code),
    subject: context.subject,
    encounter: context.encounter,
    effectiveDateTime: instant ? new Date(start).toISOString() : undefined,
    effectivePeriod: instant ? undefined : { start: new Date(start).toISOString(), end: new Date(end).toISOString() },
    issued: typeof context.issued === 'string' ? context.issued : context.issued.toISOString(),
    device: context.device,
    ...value?.element,
    component: component.length > 0 ? component : undefined,
  });
  applyVitalSigns(observation);
  // Conventional element order, so stored and served JSON reads naturally.
  const { resourceType, meta, extension, identifier, status, category, ...rest } = observation;
  return defined({ resourceType, meta, extension, identifier, status, category, ...rest });
}

/**
 * The value for a group, undefined if a grid would be too large. Single-valued types take the
 * latest reading (see reading-time.ts), and say when it was taken if the Observation is grouped.
 */
function valueOf(template: ValueTemplate, samples: readonly Sample[], start: number, end: number, grouped: boolean): BuiltValue | undefined {
  if (template.valueType === 'SampledData') {
    const data = encodeGrid(samples, start, end, template.defaultPeriod);
    if (data === undefined) return undefined;
    const origin = defined({ value: 0, unit: template.unit, system: template.system, code: template.code });
    return { element: { valueSampledData: { origin, period: template.defaultPeriod, dimensions: 1, data } } };
  }
  const latest = samples
    .map((s): TimedValue & { value: ValueElement } => ({ time: s.time, value: singleValue(template, s.value) }))
    .reduce((kept, next) => (supersedes(next, kept) ? next : kept));
  return grouped ? { element: latest.value, extension: [readingTimeExtension(latest.time)] } : { element: latest.value };
}

function singleValue(template: Exclude<ValueTemplate, { valueType: 'SampledData' }>, value: string): ValueElement {
  switch (template.valueType) {
    case 'Quantity':
      return { valueQuantity: defined({ value: Number(value), unit: template.unit, system: template.system, code: template.code }) };
    case 'String':
      return { valueString: value };
    case 'CodeableConcept':
      return { valueCodeableConcept: cloneJson(template.concept) };
  }
}
