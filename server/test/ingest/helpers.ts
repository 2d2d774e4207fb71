import { readFileSync } from 'node:fs';
import { compileMapping, type CompiledMapping, type ObservationContext } from '../../src/ingest/template/index.ts';

/** Shared fixtures for the ingest template tests. */

export const NOW = new Date('2024-05-01T12:00:00Z');

export const CONTEXT: ObservationContext = {
  issued: '2024-05-01T12:00:01.000Z',
  device: { reference: 'Device/dev-1' },
  subject: { reference: 'Patient/pat-1' },
};

export function builtinDefinition(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`../../../fhir-profiles/ingest/${name}.json`, import.meta.url), 'utf8'));
}

export function builtin(name: string): CompiledMapping {
  return compileMapping(builtinDefinition(name), { name });
}

export const BUILTINS = ['openmhealth', 'huawei-health', 'vigil-generic'] as const;

/** A definition from bare device and FHIR templates ({ templateType, template } entries). */
export function definition(device: unknown[], fhir: unknown[], identityResolution?: string): Record<string, unknown> {
  return {
    ...(identityResolution ? { identityResolution } : {}),
    deviceMapping: { templateType: 'CollectionContent', template: device },
    fhirMapping: { templateType: 'CollectionFhir', template: fhir },
  };
}

export const HEART_RATE_DEVICE = {
  templateType: 'JsonPathContent',
  template: {
    typeName: 'heartrate',
    typeMatchExpression: '$..[?(@heartRate)]',
    deviceIdExpression: '$.deviceId',
    timestampExpression: '$.endDate',
    values: [{ valueName: 'hr', valueExpression: '$.heartRate', required: 'true' }],
  },
};

export function heartRateFhir(extra: Record<string, unknown> = {}, value: Record<string, unknown> = {}) {
  return {
    templateType: 'CodeValueFhir',
    template: {
      typeName: 'heartrate',
      periodInterval: 0,
      codes: [{ code: '8867-4', system: 'http://loinc.org', display: 'Heart rate' }],
      value: { valueName: 'hr', valueType: 'Quantity', unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min', ...value },
      ...extra,
    },
  };
}

/** mulberry32: a small seeded PRNG, so every run fuzzes the same input. */
export function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
