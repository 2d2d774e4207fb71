import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileMapping, type Rejection } from '../../src/ingest/template/index.ts';
import { NOW, builtin, definition, heartRateFhir } from './helpers.ts';

const generic = builtin('vigil-generic');
const reading = (extra: Record<string, unknown> = {}) => ({ deviceId: 'dev-1', timestamp: '2024-05-01T10:00:00Z', type: 'heart-rate', value: 72, unit: '/min', ...extra });

function rejection(message: unknown, mapping = generic): Rejection {
  const result = mapping.normalize(message, { now: NOW });
  assert.deepEqual(result.measurements, [], 'expected no measurement');
  assert.equal(result.rejections.length, 1, JSON.stringify(result.rejections));
  return result.rejections[0]!;
}

describe('per-message rejections', () => {
  test('a message must be a JSON object', () => {
    for (const message of [null, 'text', 42, [reading()]]) {
      assert.match(rejection(message).reason, /message must be a JSON object/);
    }
  });

  test('nesting beyond the limit, including a cycle, is refused before any template runs', () => {
    let deep: Record<string, unknown> = reading();
    for (let i = 0; i < 40; i++) deep = { nested: deep };
    assert.deepEqual(rejection(deep), { reason: 'message is nested deeper than 32 levels' });
    const cyclic: Record<string, unknown> = reading();
    cyclic.self = cyclic;
    assert.deepEqual(rejection(cyclic), { reason: 'message is nested deeper than 32 levels' });
  });

  test('timestamps: unparseable, without zone, numeric, invalid dates, too far in the future', () => {
    const cases: [unknown, RegExp][] = [
      ['yesterday', /timestamp "yesterday" is not an ISO 8601 date-time/],
      ['2024-05-01T10:00:00', /has no time zone/],
      ['2024-05-01', /is not an ISO 8601 date-time/],
      [1714557600, /timestamp must be an ISO 8601 string, got 1714557600/],
      ['2024-02-30T10:00:00Z', /is not a valid date-time/],
      ['2024-05-01T25:00:00Z', /is not a valid date-time/],
      ['2024-05-01T12:05:01Z', /is more than 5 minutes in the future/],
      ['2024-05-01T13:00:00+00:30', /is more than 5 minutes in the future/],
    ];
    for (const [timestamp, reason] of cases) {
      const r = rejection(reading({ timestamp }));
      assert.equal(r.template, 'deviceMapping.template[0]');
      assert.equal(r.typeName, 'heartrate');
      assert.equal(r.field, 'timestampExpression');
      assert.match(r.reason, reason, String(timestamp));
    }
    const accepted = generic.normalize(reading({ timestamp: '2024-05-01T14:04:00+02:00' }), { now: NOW });
    assert.deepEqual(accepted.measurements[0]!.occurrenceTime, new Date('2024-05-01T12:04:00Z'));
  });

  test('values: missing, non-numeric for a Quantity, NaN, Infinity, objects', () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /required value "hr" is missing/],
      [null, /required value "hr" is missing/],
      ['seventy', /value "hr" is "seventy", not a number/],
      ['NaN', /value "hr" is "NaN", not a number/],
      ['Infinity', /not a number/],
      ['0x48', /not a number/],
      ['', /not a number/],
      [Number.NaN, /value "hr": NaN is not a finite number/],
      [Number.POSITIVE_INFINITY, /Infinity is not a finite number/],
      [{ v: 72 }, /expected a single value, got an object/],
      [[72], /expected a single value, got an array/],
    ];
    for (const [value, reason] of cases) {
      const r = rejection(reading({ value }));
      assert.equal(r.field, 'values[0].valueExpression');
      assert.match(r.reason, reason, String(value));
    }
  });

  test('numeric strings are accepted for a Quantity and stored canonically', () => {
    for (const [value, stored] of [
      ['72', '72'],
      [' 72.50 ', '72.5'],
      ['1e2', '100'],
      [72, '72'],
    ]) {
      const { measurements } = generic.normalize(reading({ value }), { now: NOW });
      assert.deepEqual(measurements[0]!.properties, [{ name: 'hr', value: stored }]);
    }
  });

  test('device ids must be present, scalar and of sane length', () => {
    assert.match(rejection(reading({ deviceId: undefined })).reason, /no device id found/);
    assert.match(rejection(reading({ deviceId: '  ' })).reason, /device id must be a non-empty string or a number/);
    assert.match(rejection(reading({ deviceId: true })).reason, /got true/);
    assert.match(rejection(reading({ deviceId: 'x'.repeat(300) })).reason, /longer than 256 characters/);
    assert.equal(generic.normalize(reading({ deviceId: 12345 }), { now: NOW }).measurements[0]!.deviceId, '12345');
  });

  test('a bad reading does not affect its neighbours in the same message', () => {
    const message = { readings: [reading(), reading({ value: 'abc' }), reading({ type: 'spo2', value: 97, unit: '%' })] };
    const { measurements, rejections } = generic.normalize(message, { now: NOW });
    assert.deepEqual(
      measurements.map((m) => m.type),
      ['heartrate', 'spo2'],
    );
    assert.equal(rejections.length, 1);
    assert.match(rejections[0]!.reason, /"abc", not a number/);
  });

  test('expression failures at message time: function errors, several matches', () => {
    const device = {
      templateType: 'CalculatedContent',
      template: {
        typeName: 'heartrate',
        defaultExpressionLanguage: 'JmesPath',
        typeMatchExpression: { value: '$..[?(@.hr)]', language: 'JsonPath' },
        deviceIdExpression: 'matchedToken.id',
        timestampExpression: 'matchedToken.t',
        values: [{ valueName: 'hr', valueExpression: 'divide(matchedToken.hr, matchedToken.scale)', required: true }],
      },
    };
    const mapping = compileMapping(definition([device], [heartRateFhir()]));
    const base = { id: 'd', t: '2024-05-01T10:00:00Z', hr: 720 };
    assert.equal(mapping.normalize({ ...base, scale: 10 }, { now: NOW }).measurements[0]!.properties[0]!.value, '72');
    assert.deepEqual(rejection({ ...base, scale: 0 }, mapping), {
      template: 'deviceMapping.template[0]',
      typeName: 'heartrate',
      field: 'values[0].valueExpression',
      reason: 'divide(): division by zero',
    });
    assert.match(rejection({ ...base, scale: 'ten' }, mapping).reason, /divide\(\): argument 2 must be a number, got string/);

    const several = structuredClone(device);
    several.template.deviceIdExpression = { value: '$..id', language: 'JsonPath' } as unknown as string;
    const severalMapping = compileMapping(definition([several], [heartRateFhir()]));
    const r = rejection({ ...base, scale: 1, inner: { id: 'other' } }, severalMapping);
    assert.equal(r.field, 'deviceIdExpression');
    // The message's id, the inner id, and both again under matchedToken (here the whole message).
    assert.match(r.reason, /matched 4 values where one was expected/);
  });

  test('Create mode needs a patient id; correlation ids are required where grouped by them', () => {
    const device = {
      templateType: 'JsonPathContent',
      template: {
        typeName: 'heartrate',
        typeMatchExpression: '$..[?(@hr)]',
        deviceIdExpression: '$.id',
        patientIdExpression: '$.patient',
        correlationIdExpression: '$.session',
        timestampExpression: '$.t',
        values: [{ valueName: 'hr', valueExpression: '$.hr' }],
      },
    };
    const mapping = compileMapping(definition([device], [heartRateFhir({ periodInterval: -1 })], 'Create'));
    const ok = { id: 'd', patient: 'p', session: 's1', t: '2024-05-01T10:00:00Z', hr: 70 };
    assert.equal(mapping.normalize(ok, { now: NOW }).measurements.length, 1);
    assert.deepEqual(rejection({ ...ok, patient: undefined }, mapping), {
      template: 'deviceMapping.template[0]',
      typeName: 'heartrate',
      field: 'patientIdExpression',
      reason: 'no patient id found',
    });
    assert.equal(rejection({ ...ok, session: undefined }, mapping).field, 'correlationIdExpression');
  });

  test('end timestamps must not precede the timestamp; a reading needs a value the FHIR mapping uses', () => {
    const steps = { deviceId: 'd', timestamp: '2024-05-01T10:00:00Z', endTimestamp: '2024-05-01T09:00:00Z', type: 'steps', value: 5, unit: 'steps' };
    const r = rejection(steps);
    assert.equal(r.field, 'endTimestampExpression');
    assert.match(r.reason, /end timestamp is before the timestamp/);

    const device = {
      templateType: 'JsonPathContent',
      template: {
        typeName: 'heartrate',
        typeMatchExpression: '$..[?(@id)]',
        deviceIdExpression: '$.id',
        timestampExpression: '$.t',
        values: [{ valueName: 'hr', valueExpression: '$.hr' }],
      },
    };
    const mapping = compileMapping(definition([device], [heartRateFhir()]));
    const empty = rejection({ id: 'd', t: '2024-05-01T10:00:00Z' }, mapping);
    assert.equal(empty.field, 'values');
    assert.match(empty.reason, /none of the values the FHIR mapping uses \(hr\) is present/);
  });

  test('String values take any scalar text', () => {
    const device = {
      templateType: 'JsonPathContent',
      template: {
        typeName: 'note',
        typeMatchExpression: '$..[?(@note)]',
        deviceIdExpression: '$.id',
        timestampExpression: '$.t',
        values: [{ valueName: 'note', valueExpression: '$.note', required: true }],
      },
    };
    const fhir = {
      templateType: 'CodeValueFhir',
      template: { typeName: 'note', codes: [{ code: 'x', system: 'urn:test' }], value: { valueName: 'note', valueType: 'String' } },
    };
    const mapping = compileMapping(definition([device], [fhir]));
    assert.deepEqual(mapping.normalize({ id: 'd', t: '2024-05-01T10:00:00Z', note: false }, { now: NOW }).measurements[0]!.properties, [
      { name: 'note', value: 'false' },
    ]);
  });
});
