import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileMapping, MappingError } from '../../src/ingest/template/index.ts';
import { HEART_RATE_DEVICE, definition, heartRateFhir } from './helpers.ts';

type Definition = ReturnType<typeof definition>;
type Template = { templateType: string; template: Record<string, unknown> };

/** A valid mapping to break one field at a time. */
function base(): Definition {
  return definition([structuredClone(HEART_RATE_DEVICE)], [heartRateFhir()]);
}

const device = (d: Definition, i = 0) => (d.deviceMapping as { template: Template[] }).template[i]!;
const fhir = (d: Definition, i = 0) => (d.fhirMapping as { template: Template[] }).template[i]!;

/** `change` edits the base definition in place; `replace` returns a different definition instead. */
interface Case {
  name: string;
  change?: (d: Definition) => unknown;
  replace?: (d: Definition) => unknown;
  template: string;
  field: string;
  message: RegExp;
}

const CASES: Case[] = [
  { name: 'not an object', replace: () => 'x', template: 'mapping', field: '', message: /must be an object/ },
  { name: 'identityResolution', replace: (d) => ({ ...d, identityResolution: 'Guess' }), template: 'mapping', field: 'identityResolution', message: /Create or Lookup/ },
  { name: 'missing deviceMapping', replace: (d) => ({ fhirMapping: d.fhirMapping }), template: 'mapping', field: 'deviceMapping', message: /is required/ },
  {
    name: 'collection type',
    change: (d) => ((d.deviceMapping as Template).templateType = 'CollectionFhir'),
    template: 'deviceMapping',
    field: 'templateType',
    message: /must be CollectionContent/,
  },
  { name: 'unknown device template type', change: (d) => (device(d).templateType = 'XmlContent'), template: 'deviceMapping.template[0]', field: 'templateType', message: /unknown template type "XmlContent"/ },
  { name: 'unknown fhir template type', change: (d) => (fhir(d).templateType = 'CodeValue'), template: 'fhirMapping.template[0]', field: 'templateType', message: /expected CodeValueFhir/ },
  { name: 'missing typeName', change: (d) => delete device(d).template.typeName, template: 'deviceMapping.template[0]', field: 'typeName', message: /is required/ },
  { name: 'missing typeMatchExpression', change: (d) => delete device(d).template.typeMatchExpression, template: 'deviceMapping.template[0]', field: 'typeMatchExpression', message: /is required/ },
  { name: 'missing deviceIdExpression', change: (d) => delete device(d).template.deviceIdExpression, template: 'deviceMapping.template[0]', field: 'deviceIdExpression', message: /is required/ },
  { name: 'missing timestampExpression', change: (d) => delete device(d).template.timestampExpression, template: 'deviceMapping.template[0]', field: 'timestampExpression', message: /is required/ },
  { name: 'values not an array', change: (d) => (device(d).template.values = {}), template: 'deviceMapping.template[0]', field: 'values', message: /must be an array/ },
  {
    name: 'missing valueExpression',
    change: (d) => delete (device(d).template.values as Record<string, unknown>[])[0]!.valueExpression,
    template: 'deviceMapping.template[0]',
    field: 'values[0].valueExpression',
    message: /is required/,
  },
  {
    name: 'duplicate valueName',
    change: (d) => (device(d).template.values as unknown[]).push({ valueName: 'hr', valueExpression: '$.x' }),
    template: 'deviceMapping.template[0]',
    field: 'values[1].valueName',
    message: /duplicate valueName "hr"/,
  },
  { name: 'bad JSONPath', change: (d) => (device(d).template.typeMatchExpression = '$..[?(@heartRate'), template: 'deviceMapping.template[0]', field: 'typeMatchExpression', message: /JSONPath: expected '\)'/ },
  {
    name: 'bad JMESPath',
    change: (d) => {
      device(d).templateType = 'CalculatedContent';
      (device(d).template.values as Record<string, unknown>[])[0]!.valueExpression = { value: 'heartRate[', language: 'JmesPath' };
    },
    template: 'deviceMapping.template[0]',
    field: 'values[0].valueExpression',
    message: /JMESPath/,
  },
  {
    name: 'unknown JMESPath function',
    change: (d) => {
      device(d).templateType = 'CalculatedContent';
      device(d).template.defaultExpressionLanguage = 'JmesPath';
      device(d).template.typeMatchExpression = 'toUpper(Body)';
    },
    template: 'deviceMapping.template[0]',
    field: 'typeMatchExpression',
    message: /unknown function toUpper\(\)/,
  },
  {
    name: 'unknown expression language',
    change: (d) => (device(d).template.timestampExpression = { value: '$.t', language: 'XPath' }),
    template: 'deviceMapping.template[0]',
    field: 'timestampExpression',
    message: /JsonPath or JmesPath/,
  },
  {
    name: 'duplicate FHIR typeName',
    change: (d) => (d.fhirMapping as { template: unknown[] }).template.push(heartRateFhir()),
    template: 'fhirMapping.template[1]',
    field: 'typeName',
    message: /duplicate typeName "heartrate" \(also fhirMapping.template\[0\]\)/,
  },
  {
    name: 'FHIR template without a device template',
    change: (d) => (d.fhirMapping as { template: unknown[] }).template.push(heartRateFhir({ typeName: 'pulse' })),
    template: 'fhirMapping.template[1]',
    field: 'typeName',
    message: /no deviceMapping template produces type "pulse"/,
  },
  {
    name: 'device template without a FHIR template',
    change: (d) => (device(d).template.typeName = 'pulse'),
    template: 'deviceMapping.template[0]',
    field: 'typeName',
    message: /no fhirMapping template has typeName "pulse"/,
  },
  {
    name: 'bad valueType',
    change: (d) => ((fhir(d).template.value as Record<string, unknown>).valueType = 'Decimal'),
    template: 'fhirMapping.template[0]',
    field: 'value.valueType',
    message: /unknown valueType "Decimal"/,
  },
  {
    name: 'bad component valueType',
    change: (d) => {
      const t = fhir(d).template;
      t.components = [{ codes: [{ code: 'x' }], value: { valueName: 'hr', valueType: 'Integer' } }];
    },
    template: 'fhirMapping.template[0]',
    field: 'components[0].value.valueType',
    message: /unknown valueType "Integer"/,
  },
  { name: 'no codes', change: (d) => (fhir(d).template.codes = []), template: 'fhirMapping.template[0]', field: 'codes', message: /at least one code/ },
  { name: 'no value', change: (d) => delete fhir(d).template.value, template: 'fhirMapping.template[0]', field: 'value', message: /a value or at least one component/ },
  { name: 'periodInterval', change: (d) => (fhir(d).template.periodInterval = 30), template: 'fhirMapping.template[0]', field: 'periodInterval', message: /0, 60, 1440 or -1/ },
  {
    name: 'value never extracted',
    change: (d) => ((fhir(d).template.value as Record<string, unknown>).valueName = 'bpm'),
    template: 'fhirMapping.template[0]',
    field: 'value.valueName',
    message: /extracts "bpm"/,
  },
  {
    name: 'SampledData without defaultPeriod',
    change: (d) => ((fhir(d).template.value as Record<string, unknown>).valueType = 'SampledData'),
    template: 'fhirMapping.template[0]',
    field: 'value.defaultPeriod',
    message: /is required/,
  },
  {
    name: 'SampledData grid too large',
    change: (d) => {
      fhir(d).template.periodInterval = 1440;
      fhir(d).template.value = { valueName: 'hr', valueType: 'SampledData', defaultPeriod: 100 };
    },
    template: 'fhirMapping.template[0]',
    field: 'value.defaultPeriod',
    message: /more than 100000 samples/,
  },
  {
    name: 'correlation grouping without correlationIdExpression',
    change: (d) => (fhir(d).template.periodInterval = -1),
    template: 'deviceMapping.template[0]',
    field: 'correlationIdExpression',
    message: /groups by correlation id/,
  },
  {
    name: 'Create without patientIdExpression',
    replace: (d) => ({ ...d, identityResolution: 'Create' }),
    template: 'deviceMapping.template[0]',
    field: 'patientIdExpression',
    message: /required when identityResolution is Create/,
  },
];

for (const c of CASES) {
  test(`MappingError: ${c.name}`, () => {
    const d = base();
    c.change?.(d);
    const input = c.replace ? c.replace(d) : d;
    assert.throws(
      () => compileMapping(input),
      (error: unknown) => {
        assert.ok(error instanceof MappingError, String(error));
        assert.equal(error.template, c.template);
        assert.equal(error.field, c.field);
        assert.match(error.message, c.message);
        return true;
      },
    );
  });
}

test('the valid base mapping compiles, and MedTech spellings are accepted', () => {
  const d = base();
  device(d).templateType = 'jsonpathcontent';
  (fhir(d).template.value as Record<string, unknown>).valueType = 'quantity';
  assert.deepEqual(compileMapping(d).types, ['heartrate']);
});
