import { readFileSync } from 'node:fs';
import type { Observation, Resource } from '@medplum/fhirtypes';
import { compileMapping } from '../../src/ingest/template/index.ts';
import { readSynthea, syntheaFiles } from '../synthea.ts';

/** Resources the write path sees: Synthea patients' records and the Observations device mappings build. */

/** Every resource of every `step`-th Synthea patient (and the two batch bundles), stamped as stored. */
export function syntheaSample(step: number): Resource[] {
  const files = syntheaFiles();
  const out: Resource[] = [];
  files.forEach((file, i) => {
    if (file.startsWith('0-') || i % step === 0) {
      for (const e of readSynthea(file).entry ?? []) if (e.resource) out.push(stamped(e.resource));
    }
  });
  return out;
}

/** Observations of the built-in mappings, instant and grouped, for a device bound to a patient. */
export function deviceObservations(): Observation[] {
  const out: Observation[] = [];
  const context = { issued: '2026-01-01T00:00:05Z', device: { reference: 'Device/dev-1' }, subject: { reference: 'Patient/p-1' } };
  const generic = mapping('vigil-generic');
  for (const [type, unit, value] of [['heart-rate', '/min', 72], ['spo2', '%', 96], ['respiratory-rate', '/min', 16], ['body-temperature', 'Cel', 36.8]] as const) {
    const { measurements } = generic.normalize({ deviceId: 'dev-1', timestamp: '2026-01-01T00:00:00Z', type, value, unit });
    out.push(...generic.toObservations(measurements, context).observations);
  }
  const omh = mapping('openmhealth');
  const header = (name: string) => ({ schema_id: { namespace: 'omh', name, version: '1.0' } });
  const frame = { effective_time_frame: { date_time: '2026-01-01T00:00:00Z' } };
  for (const message of [
    { deviceId: 'dev-1', header: header('heart-rate'), body: { heart_rate: { value: 70, unit: 'beats/min' }, ...frame } },
    { deviceId: 'dev-1', header: header('blood-pressure'), body: { systolic_blood_pressure: { value: 120, unit: 'mmHg' }, diastolic_blood_pressure: { value: 80, unit: 'mmHg' }, ...frame } },
    { deviceId: 'dev-1', header: header('step-count'), body: { step_count: 500, effective_time_frame: { time_interval: { start_date_time: '2026-01-01T00:00:00Z', end_date_time: '2026-01-01T01:00:00Z' } } } },
  ]) {
    out.push(...omh.toObservations(omh.normalize(message).measurements, context).observations);
  }
  if (out.length < 7) throw new Error(`expected device Observations from every message, got ${out.length}`);
  return out.map((o) => stamped(o) as Observation);
}

function mapping(name: string) {
  return compileMapping(JSON.parse(readFileSync(new URL(`../../../fhir-profiles/ingest/${name}.json`, import.meta.url), 'utf8')), { name });
}

function stamped(resource: Resource): Resource {
  return { ...resource, id: resource.id ?? crypto.randomUUID(), meta: { ...resource.meta, versionId: '1', lastUpdated: '2026-01-01T00:00:10.000Z' } } as Resource;
}
