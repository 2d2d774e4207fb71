import { compileDeviceMapping, type DeviceTemplate } from './device-templates.ts';
import { MappingError } from './errors.ts';
import { compileFhirMapping, type FhirTemplate } from './fhir-templates.ts';
import { isPlainObject } from './json.ts';
import { normalizeMessage, type Binding } from './normalize.ts';
import { buildObservations } from './observations.ts';
import { TemplateReader } from './read.ts';
import type { CompiledMapping, IdentityResolution } from './types.ts';

/**
 * Validates and compiles `{ deviceMapping, fhirMapping, identityResolution }`. Everything that
 * can be wrong with a mapping is found here, as a MappingError, before any message is read.
 */
export function compileMapping(definition: unknown, options: { name?: string } = {}): CompiledMapping {
  if (!isPlainObject(definition)) throw new MappingError('mapping', '', 'must be an object with deviceMapping and fhirMapping');
  const top = new TemplateReader('mapping', definition);
  const name = options.name ?? 'default';
  if (name.trim() === '') throw new MappingError('mapping', 'name', 'must be a non-empty string');
  const identityResolution = (top.optionalString('identityResolution') ?? 'Lookup') as IdentityResolution;
  if (identityResolution !== 'Create' && identityResolution !== 'Lookup') top.fail('identityResolution', 'must be Create or Lookup');
  if (!top.has('deviceMapping')) top.fail('deviceMapping', 'is required');
  if (!top.has('fhirMapping')) top.fail('fhirMapping', 'is required');

  const devices = compileDeviceMapping(definition.deviceMapping);
  const fhir = compileFhirMapping(definition.fhirMapping);
  const byType = new Map<string, FhirTemplate>();
  for (const t of fhir) {
    const other = byType.get(t.typeName);
    if (other) throw new MappingError(t.path, 'typeName', `duplicate typeName ${JSON.stringify(t.typeName)} (also ${other.path})`);
    byType.set(t.typeName, t);
  }
  checkDeviceTemplates(devices, byType, identityResolution);
  checkFhirTemplates(fhir, devices);

  const bindings = new Map([...byType].map(([type, t]) => [type, bindingOf(t)]));
  const settings = { templates: devices, bindings, identityResolution };
  return {
    name,
    identityResolution,
    types: [...byType.keys()],
    normalize: (message, normalizeOptions) => normalizeMessage(settings, message, normalizeOptions),
    toObservations: (measurements, context) => buildObservations(name, byType, measurements, context),
  };
}

function checkDeviceTemplates(devices: readonly DeviceTemplate[], byType: ReadonlyMap<string, FhirTemplate>, identity: IdentityResolution): void {
  for (const d of devices) {
    const target = byType.get(d.typeName);
    if (!target) throw new MappingError(d.path, 'typeName', `no fhirMapping template has typeName ${JSON.stringify(d.typeName)}`);
    if (target.periodInterval === -1 && !d.correlationId) {
      throw new MappingError(d.path, 'correlationIdExpression', `is required: ${target.path} groups by correlation id (periodInterval -1)`);
    }
    if (identity === 'Create' && !d.patientId) throw new MappingError(d.path, 'patientIdExpression', 'is required when identityResolution is Create');
  }
}

function checkFhirTemplates(fhir: readonly FhirTemplate[], devices: readonly DeviceTemplate[]): void {
  for (const t of fhir) {
    const producers = devices.filter((d) => d.typeName === t.typeName);
    if (producers.length === 0) throw new MappingError(t.path, 'typeName', `no deviceMapping template produces type ${JSON.stringify(t.typeName)}`);
    const extracted = new Set(producers.flatMap((d) => d.values.map((v) => v.valueName)));
    const bound = [
      ...(t.value ? [{ field: 'value.valueName', valueName: t.value.valueName }] : []),
      ...t.components.map((c, i) => ({ field: `components[${i}].value.valueName`, valueName: c.value.valueName })),
    ];
    for (const { field, valueName } of bound) {
      if (!extracted.has(valueName)) throw new MappingError(t.path, field, `no deviceMapping template of type ${JSON.stringify(t.typeName)} extracts ${JSON.stringify(valueName)}`);
    }
  }
}

function bindingOf(t: FhirTemplate): Binding {
  const values = [...(t.value ? [t.value] : []), ...t.components.map((c) => c.value)];
  return {
    used: new Set(values.map((v) => v.valueName)),
    numeric: new Set(values.filter((v) => v.valueType === 'Quantity' || v.valueType === 'SampledData').map((v) => v.valueName)),
  };
}
