import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileMapping } from '../../src/ingest/template/index.ts';
import { HEART_RATE_DEVICE, NOW, definition, heartRateFhir } from './helpers.ts';

const BP_FHIR = {
  templateType: 'CodeValueFhir',
  template: {
    typeName: 'bloodpressure',
    codes: [{ code: '85354-9', system: 'http://loinc.org' }],
    components: [
      { codes: [{ code: '8480-6', system: 'http://loinc.org' }], value: { valueName: 'systolic', valueType: 'Quantity' } },
      { codes: [{ code: '8462-4', system: 'http://loinc.org' }], value: { valueName: 'diastolic', valueType: 'Quantity' } },
    ],
  },
};

describe('JsonPathContent', () => {
  const mapping = compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir()]));

  test('each matched token is one measurement; later expressions read the token', () => {
    const message = {
      Body: [
        { heartRate: '78', endDate: '2019-02-01T22:46:01.8750000Z', deviceId: 'device123' },
        { heartRate: 81, endDate: '2019-02-01T23:46:01.8750000Z', deviceId: 'device123', patientId: 'p' },
        { steps: 3 },
      ],
      Properties: {},
      SystemProperties: {},
    };
    const { measurements, rejections } = mapping.normalize(message, { now: NOW });
    assert.deepEqual(rejections, []);
    assert.deepEqual(measurements, [
      { type: 'heartrate', deviceId: 'device123', occurrenceTime: new Date('2019-02-01T22:46:01.875Z'), properties: [{ name: 'hr', value: '78' }] },
      { type: 'heartrate', deviceId: 'device123', occurrenceTime: new Date('2019-02-01T23:46:01.875Z'), properties: [{ name: 'hr', value: '81' }] },
    ]);
  });

  test('a message that matches no template is rejected as such', () => {
    assert.deepEqual(mapping.normalize({ steps: 3 }, { now: NOW }), { measurements: [], rejections: [{ reason: 'no template matched the message' }] });
  });
});

describe('CalculatedContent', () => {
  test('JSONPath by default; expressions see the message plus matchedToken', () => {
    const device = {
      templateType: 'CalculatedContent',
      template: {
        typeName: 'heartrate',
        typeMatchExpression: '$..[?(@heartRate)]',
        deviceIdExpression: '$.deviceId',
        patientIdExpression: '$.matchedToken.patient',
        encounterIdExpression: '$.encounter',
        timestampExpression: '$.matchedToken.endDate',
        values: [{ valueName: 'hr', valueExpression: '$.matchedToken.heartRate', required: true }],
      },
    };
    const mapping = compileMapping(definition([device], [heartRateFhir()]));
    const message = { deviceId: 'dev', encounter: 'enc-9', readings: [{ heartRate: 70, patient: 'p1', endDate: '2024-05-01T10:00:00+02:00' }] };
    assert.deepEqual(mapping.normalize(message, { now: NOW }).measurements, [
      {
        type: 'heartrate',
        deviceId: 'dev',
        patientId: 'p1',
        encounterId: 'enc-9',
        occurrenceTime: new Date('2024-05-01T08:00:00Z'),
        properties: [{ name: 'hr', value: '70' }],
      },
    ]);
  });

  test('JMESPath expressions with custom functions, per expression or by default', () => {
    const device = {
      templateType: 'CalculatedContent',
      template: {
        typeName: 'bloodpressure',
        defaultExpressionLanguage: 'JmesPath',
        typeMatchExpression: { value: '$..[?(@systolic && @diastolic)]', language: 'JsonPath' },
        deviceIdExpression: 'matchedToken.device',
        timestampExpression: 'fromUnixTimestampMs(matchedToken.ts)',
        correlationIdExpression: { value: '$.session', language: 'JsonPath' },
        values: [
          { valueName: 'systolic', valueExpression: 'divide(matchedToken.systolic, `10`)', required: true },
          { valueName: 'diastolic', valueExpression: { value: 'matchedToken.diastolic', language: 'JmesPath' }, required: true },
        ],
      },
    };
    const mapping = compileMapping(definition([device], [BP_FHIR]));
    const message = { session: 42, items: [{ device: 'cuff', ts: 1714557600000, systolic: 1215, diastolic: 80 }] };
    assert.deepEqual(mapping.normalize(message, { now: NOW }).measurements, [
      {
        type: 'bloodpressure',
        deviceId: 'cuff',
        correlationId: '42',
        occurrenceTime: new Date('2024-05-01T10:00:00Z'),
        properties: [
          { name: 'systolic', value: '121.5' },
          { name: 'diastolic', value: '80' },
        ],
      },
    ]);
  });

  test('a JMESPath typeMatchExpression projection yields one measurement per item', () => {
    const device = {
      templateType: 'CalculatedContent',
      template: {
        typeName: 'heartrate',
        typeMatchExpression: { value: 'Body[?contains(keys(@), `"heartRate"`)]', language: 'JmesPath' },
        deviceIdExpression: { value: '@.matchedToken.deviceId', language: 'JmesPath' },
        timestampExpression: { value: '@.matchedToken.endDate', language: 'JmesPath' },
        values: [{ valueName: 'hr', valueExpression: { value: '@.matchedToken.heartRate', language: 'JmesPath' }, required: true }],
      },
    };
    const mapping = compileMapping(definition([device], [heartRateFhir()]));
    const body = [
      { heartRate: 60, deviceId: 'a', endDate: '2024-05-01T10:00:00Z' },
      { other: 1 },
      { heartRate: 61, deviceId: 'a', endDate: '2024-05-01T10:01:00Z' },
    ];
    assert.deepEqual(
      mapping.normalize({ Body: body }, { now: NOW }).measurements.map((m) => m.properties[0]!.value),
      ['60', '61'],
    );
  });
});

describe('IotJsonPathContent', () => {
  const device = {
    templateType: 'IotJsonPathContent',
    template: {
      typeName: 'heartrate',
      typeMatchExpression: '$..[?(@Body.heartRate)]',
      patientIdExpression: '$.Body.patientId',
      values: [{ valueName: 'hr', valueExpression: '$.Body.heartRate', required: 'true' }],
    },
  };
  const mapping = compileMapping(definition([device], [heartRateFhir()]));

  test('device id and time come from the IoT Hub envelope; the device creation time is preferred', () => {
    const message = {
      Body: { heartRate: '78', patientId: 'p1' },
      Properties: { 'iothub-creation-time-utc': '2024-05-01T10:00:00Z' },
      SystemProperties: { 'iothub-connection-device-id': 'device123', 'iothub-enqueuedtime': '2024-05-01T10:00:05Z' },
    };
    assert.deepEqual(mapping.normalize(message, { now: NOW }).measurements, [
      { type: 'heartrate', deviceId: 'device123', patientId: 'p1', occurrenceTime: new Date('2024-05-01T10:00:00Z'), properties: [{ name: 'hr', value: '78' }] },
    ]);
  });

  test('without a creation time, the enqueued time is used (camel-case envelope too)', () => {
    const message = {
      Body: { heartRate: 90 },
      systemProperties: { 'iothub-connection-device-id': 'dev-7', 'iothub-enqueuedtime': '2024-05-01T10:00:05.123Z' },
    };
    const [m] = mapping.normalize(message, { now: NOW }).measurements;
    assert.equal(m!.deviceId, 'dev-7');
    assert.deepEqual(m!.occurrenceTime, new Date('2024-05-01T10:00:05.123Z'));
  });

  test('JMESPath is refused', () => {
    const jmes = structuredClone(device);
    (jmes.template as Record<string, unknown>).typeMatchExpression = { value: 'Body', language: 'JmesPath' };
    assert.throws(() => compileMapping(definition([jmes], [heartRateFhir()])), { field: 'typeMatchExpression', message: /supports JSONPath only/ });
  });
});

describe('IotCentralJsonPathContent', () => {
  test('device id and time come from the IoT Central export', () => {
    const device = {
      templateType: 'IotCentralJsonPathContent',
      template: {
        typeName: 'heartrate',
        typeMatchExpression: '$..[?(@telemetry.HeartRate)]',
        values: [{ valueName: 'hr', valueExpression: '$.telemetry.HeartRate', required: true }],
      },
    };
    const mapping = compileMapping(definition([device], [heartRateFhir()]));
    const message = {
      applicationId: 'app',
      messageSource: 'telemetry',
      deviceId: 'central-1',
      schema: 'default@v1',
      enqueuedTime: '2024-05-01T09:59:59.999Z',
      telemetry: { HeartRate: 66 },
    };
    assert.deepEqual(mapping.normalize(message, { now: NOW }).measurements, [
      { type: 'heartrate', deviceId: 'central-1', occurrenceTime: new Date('2024-05-01T09:59:59.999Z'), properties: [{ name: 'hr', value: '66' }] },
    ]);
  });
});

test('every template runs on every message: one message, several types', () => {
  const steps = {
    templateType: 'JsonPathContent',
    template: {
      typeName: 'steps',
      typeMatchExpression: '$..[?(@steps)]',
      deviceIdExpression: '$.deviceId',
      timestampExpression: '$.endDate',
      values: [{ valueName: 'steps', valueExpression: '$.steps', required: true }],
    },
  };
  const stepsFhir = {
    templateType: 'CodeValueFhir',
    template: { typeName: 'steps', codes: [{ code: '55423-8', system: 'http://loinc.org' }], value: { valueName: 'steps', valueType: 'Quantity' } },
  };
  const mapping = compileMapping(definition([HEART_RATE_DEVICE, steps], [heartRateFhir(), stepsFhir]));
  const message = { Body: { heartRate: '78', steps: '2', endDate: '2024-05-01T10:00:00Z', deviceId: 'device123' } };
  assert.deepEqual(
    mapping.normalize(message, { now: NOW }).measurements.map((m) => m.type),
    ['heartrate', 'steps'],
  );
});
