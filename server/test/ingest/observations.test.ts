import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Observation } from '@medplum/fhirtypes';
import { compileMapping, groupByIdentity, IDENTIFIER_SYSTEM, mergeObservation, type Measurement } from '../../src/ingest/template/index.ts';
import { READING_TIME_URL } from '../../src/ingest/template/reading-time.ts';
import { CONTEXT, HEART_RATE_DEVICE, NOW, builtin, builtinDefinition, definition, heartRateFhir } from './helpers.ts';

const VITALS = 'http://hl7.org/fhir/StructureDefinition/';

function hrMessage(heartRate: number, endDate: string, deviceId = 'dev-1') {
  return { Body: { heartRate, endDate, deviceId } };
}

function observations(mapping: ReturnType<typeof compileMapping>, messages: unknown[], context = CONTEXT): Observation[] {
  const measurements = messages.flatMap((m) => {
    const result = mapping.normalize(m, { now: NOW });
    assert.deepEqual(result.rejections, []);
    return result.measurements;
  });
  const built = mapping.toObservations(measurements, context);
  assert.deepEqual(built.rejections, []);
  return built.observations;
}

const identifier = (o: Observation) => o.identifier![0]!.value!;

describe('instant readings', () => {
  const mapping = compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir()]), { name: 'test' });

  test('a conformant heart-rate Observation with effectiveDateTime', () => {
    const [obs] = observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z')]);
    assert.deepEqual(obs, {
      resourceType: 'Observation',
      meta: { profile: [`${VITALS}heartrate`] },
      identifier: [{ system: IDENTIFIER_SYSTEM, value: identifier(obs!) }],
      status: 'final',
      category: [
        {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }],
          text: 'Vital Signs',
        },
      ],
      code: { coding: [{ code: '8867-4', system: 'http://loinc.org', display: 'Heart rate' }], text: 'Heart rate' },
      subject: { reference: 'Patient/pat-1' },
      effectiveDateTime: '2024-05-01T10:00:00.000Z',
      issued: '2024-05-01T12:00:01.000Z',
      device: { reference: 'Device/dev-1' },
      valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    assert.match(identifier(obs!), /^[0-9a-f]{64}$/);
  });

  test('identifiers are deterministic: same reading, same identifier; any key part changes it', () => {
    const first = identifier(observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z')])[0]!);
    assert.equal(identifier(observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z')])[0]!), first);
    assert.equal(identifier(observations(mapping, [hrMessage(75, '2024-05-01T10:00:00Z')])[0]!), first, 'a corrected value keeps its identifier');
    const others = [
      observations(mapping, [hrMessage(72, '2024-05-01T10:00:01Z')])[0]!,
      observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z', 'dev-2')], { ...CONTEXT, device: { reference: 'Device/dev-2' } })[0]!,
      observations(compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir()]), { name: 'other' }), [hrMessage(72, '2024-05-01T10:00:00Z')])[0]!,
    ];
    for (const o of others) assert.notEqual(identifier(o), first);
  });

  test('re-sending a reading merges as unchanged; another value at the same time is settled by a fixed order, not by arrival', () => {
    const [stored] = observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z')]);
    const resent = observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z')], { ...CONTEXT, issued: '2024-05-02T00:00:00Z' })[0]!;
    const same = mergeObservation({ ...stored!, id: 'obs-1', meta: { ...stored!.meta, versionId: '1' } }, resent);
    assert.equal(same.changed, false);
    assert.equal(same.observation.issued, '2024-05-01T12:00:01.000Z');

    const other = observations(mapping, [hrMessage(75, '2024-05-01T10:00:00Z')], { ...CONTEXT, issued: '2024-05-02T00:00:00Z' })[0]!;
    const merged = mergeObservation({ ...stored!, id: 'obs-1' }, other);
    assert.equal(merged.changed, true);
    assert.equal(merged.observation.id, 'obs-1');
    assert.equal(merged.observation.valueQuantity!.value, 75);
    assert.equal(merged.observation.issued, '2024-05-02T00:00:00Z');
    assert.equal(mergeObservation(merged.observation, stored!).changed, false, 'the first value re-sent');
    assert.equal(observations(mapping, [hrMessage(75, '2024-05-01T10:00:00Z'), hrMessage(72, '2024-05-01T10:00:00Z')])[0]!.valueQuantity!.value, 75);
    assert.equal(observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z'), hrMessage(75, '2024-05-01T10:00:00Z')])[0]!.valueQuantity!.value, 75);
  });

  test('profiles are claimed only when met: no subject, or SampledData, fall back', () => {
    const [anonymous] = observations(mapping, [hrMessage(72, '2024-05-01T10:00:00Z')], { issued: NOW, device: { reference: 'Device/dev-1' } });
    assert.equal(anonymous!.meta, undefined);
    assert.equal(anonymous!.subject, undefined);
    assert.equal(anonymous!.category![0]!.coding![0]!.code, 'vital-signs');
    assert.equal(anonymous!.issued, '2024-05-01T12:00:00.000Z');

    const wrongUnit = compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir({}, { code: 'beats/min' })]));
    assert.deepEqual(observations(wrongUnit, [hrMessage(72, '2024-05-01T10:00:00Z')])[0]!.meta, { profile: [`${VITALS}vitalsigns`] });

    const nonVital = compileMapping(
      definition([HEART_RATE_DEVICE], [heartRateFhir({ codes: [{ code: 'hr', system: 'urn:vendor' }], category: [{ text: 'Device data' }] })]),
    );
    const [vendor] = observations(nonVital, [hrMessage(72, '2024-05-01T10:00:00Z')]);
    assert.equal(vendor!.meta, undefined);
    assert.deepEqual(vendor!.category, [{ text: 'Device data' }]);
    assert.deepEqual(vendor!.code, { coding: [{ code: 'hr', system: 'urn:vendor' }], text: 'heartrate' });
  });

  test('CodeableConcept values carry the template concept', () => {
    const removed = {
      templateType: 'CodeValueFhir',
      template: {
        typeName: 'heartrate',
        codes: [{ code: 'deviceEvent', system: 'https://example.org/events', display: 'Device Event' }],
        value: { valueName: 'hr', valueType: 'codeableConcept', text: 'Device Removed', codes: [{ code: 'removed', system: 'https://example.org/events' }] },
      },
    };
    const [obs] = observations(compileMapping(definition([HEART_RATE_DEVICE], [removed])), [hrMessage(1, '2024-05-01T10:00:00Z')]);
    assert.deepEqual(obs!.valueCodeableConcept, { coding: [{ code: 'removed', system: 'https://example.org/events' }], text: 'Device Removed' });
  });
});

describe('grouped readings', () => {
  const sampled = (periodInterval: number, defaultPeriod = 60_000) =>
    heartRateFhir({ periodInterval }, { valueType: 'SampledData', defaultPeriod, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' });

  test('an hourly SampledData bucket fills slots by offset from the hour, E elsewhere', () => {
    const mapping = compileMapping(definition([HEART_RATE_DEVICE], [sampled(60, 600_000)]));
    const [obs] = observations(mapping, [hrMessage(70, '2024-05-01T10:00:30Z'), hrMessage(72, '2024-05-01T10:25:00Z'), hrMessage(71, '2024-05-01T10:21:00Z')]);
    assert.deepEqual(obs!.effectivePeriod, { start: '2024-05-01T10:00:00.000Z', end: '2024-05-01T11:00:00.000Z' });
    assert.equal(obs!.effectiveDateTime, undefined);
    assert.deepEqual(obs!.valueSampledData, {
      origin: { value: 0, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
      period: 600_000,
      dimensions: 1,
      data: '70 E 72 E E E',
    });
    assert.deepEqual(obs!.meta, { profile: [`${VITALS}vitalsigns`] });
  });

  test('merging fills new slots, lets the incoming reading win a slot, and reports no change on a replay', () => {
    const mapping = compileMapping(definition([HEART_RATE_DEVICE], [sampled(60, 600_000)]));
    const [stored] = observations(mapping, [hrMessage(70, '2024-05-01T10:00:30Z'), hrMessage(72, '2024-05-01T10:25:00Z')]);
    const [later] = observations(mapping, [hrMessage(80, '2024-05-01T10:55:00Z'), hrMessage(73, '2024-05-01T10:29:00Z')], { ...CONTEXT, issued: '2024-05-01T12:30:00Z' });
    assert.equal(identifier(later!), identifier(stored!));
    const merged = mergeObservation(stored!, later!);
    assert.equal(merged.changed, true);
    assert.equal(merged.observation.valueSampledData!.data, '70 E 73 E E 80');
    assert.equal(merged.observation.issued, '2024-05-01T12:30:00Z');
    assert.deepEqual(merged.observation.effectivePeriod, stored!.effectivePeriod);
    assert.equal(mergeObservation(merged.observation, later!).changed, false);
  });

  test('a daily Quantity bucket keeps the latest reading of the UTC day', () => {
    const mapping = compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir({ periodInterval: 1440 })]));
    const [obs] = observations(mapping, [hrMessage(70, '2024-04-30T23:59:59Z'), hrMessage(60, '2024-04-30T01:00:00Z')]);
    assert.deepEqual(obs!.effectivePeriod, { start: '2024-04-30T00:00:00.000Z', end: '2024-05-01T00:00:00.000Z' });
    assert.equal(obs!.valueQuantity!.value, 70);
    assert.notEqual(identifier(observations(mapping, [hrMessage(70, '2024-05-01T00:00:00Z')])[0]!), identifier(obs!));
  });

  test('a single value keeps the reading taken last, whatever order readings arrive in, and records its time', () => {
    const mapping = compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir({ periodInterval: 60 })]));
    const [later] = observations(mapping, [hrMessage(80, '2024-05-01T10:30:00Z')]);
    const [earlier] = observations(mapping, [hrMessage(70, '2024-05-01T10:05:00Z')]);
    assert.deepEqual(later!.extension, [{ url: READING_TIME_URL, valueDateTime: '2024-05-01T10:30:00.000Z' }]);
    assert.deepEqual(mergeObservation(later!, earlier!), { observation: later, changed: false });
    const merged = mergeObservation(earlier!, later!);
    assert.equal(merged.changed, true);
    assert.deepEqual(merged.observation, later);
    assert.deepEqual(observations(mapping, [hrMessage(80, '2024-05-01T10:30:00Z'), hrMessage(70, '2024-05-01T10:05:00Z')])[0], later);

    // same time, other value: the same one wins in either order
    const [rival] = observations(mapping, [hrMessage(79, '2024-05-01T10:30:00Z')]);
    const kept = (a: Observation, b: Observation) => mergeObservation(a, b).observation.valueQuantity!.value;
    assert.equal(kept(later!, rival!), kept(rival!, later!));
  });

  test('each component keeps its own latest reading', () => {
    const generic = builtinDefinition('vigil-generic') as any;
    generic.fhirMapping.template.find((t: any) => t.template.typeName === 'bloodpressure').template.periodInterval = 60;
    const mapping = compileMapping(generic, { name: 'hourly-bp' });
    const reading = (type: string, value: number, timestamp: string) => ({ deviceId: 'cuff-1', timestamp, type, value, unit: 'mm[Hg]' });
    const [stored] = observations(mapping, [reading('systolic', 130, '2024-05-01T10:30:00Z'), reading('diastolic', 85, '2024-05-01T10:10:00Z')]);
    const [incoming] = observations(mapping, [reading('systolic', 120, '2024-05-01T10:20:00Z'), reading('diastolic', 80, '2024-05-01T10:20:00Z')]);
    const merged = mergeObservation(stored!, incoming!).observation;
    assert.deepEqual(
      merged.component!.map((c) => [c.code.coding![0]!.code, c.valueQuantity!.value, c.extension![0]!.valueDateTime]),
      [
        ['8480-6', 130, '2024-05-01T10:30:00.000Z'],
        ['8462-4', 80, '2024-05-01T10:20:00.000Z'],
      ],
    );
  });

  test('correlation-id groups span their readings; merging extends the period and re-anchors the grid', () => {
    const device = structuredClone(HEART_RATE_DEVICE);
    (device.template as Record<string, unknown>).correlationIdExpression = '$.session';
    const mapping = compileMapping(definition([device], [sampled(-1, 1000)]));
    const msg = (heartRate: number, endDate: string) => ({ Body: { heartRate, endDate, deviceId: 'dev-1', session: 'ecg-1' } });
    const [stored] = observations(mapping, [msg(60, '2024-05-01T10:00:02Z'), msg(62, '2024-05-01T10:00:04Z')]);
    assert.deepEqual(stored!.effectivePeriod, { start: '2024-05-01T10:00:02.000Z', end: '2024-05-01T10:00:04.000Z' });
    assert.equal(stored!.valueSampledData!.data, '60 E 62');

    const [earlier] = observations(mapping, [msg(59, '2024-05-01T10:00:00Z')]);
    assert.equal(identifier(earlier!), identifier(stored!));
    const merged = mergeObservation(stored!, earlier!);
    assert.deepEqual(merged.observation.effectivePeriod, { start: '2024-05-01T10:00:00.000Z', end: '2024-05-01T10:00:04.000Z' });
    assert.equal(merged.observation.valueSampledData!.data, '59 E 60 E 62');
  });

  test('a correlation grid that would exceed its limit is rejected, not built', () => {
    const device = structuredClone(HEART_RATE_DEVICE);
    (device.template as Record<string, unknown>).correlationIdExpression = '$.session';
    const mapping = compileMapping(definition([device], [sampled(-1, 1)]));
    const msg = (endDate: string) => ({ Body: { heartRate: 60, endDate, deviceId: 'dev-1', session: 's' } });
    const measurements = [msg('2024-05-01T10:00:00Z'), msg('2024-05-01T11:00:00Z')].flatMap((m) => mapping.normalize(m, { now: NOW }).measurements);
    const result = mapping.toObservations(measurements, CONTEXT);
    assert.deepEqual(result.observations, []);
    assert.match(result.rejections[0]!.reason, /would exceed its size limit/);

    const [a] = observations(mapping, [msg('2024-05-01T10:00:00Z')]);
    const [b] = observations(mapping, [msg('2024-05-01T11:00:00Z')]);
    const merged = mergeObservation(a!, b!);
    assert.equal(merged.changed, false);
    assert.equal(merged.observation, a);
    assert.match(merged.conflict!, /size limit/);
  });
});

describe('blood pressure from separate readings', () => {
  test('systolic and diastolic messages merge into one panel that then meets the bp profile', () => {
    const generic = builtin('vigil-generic');
    const reading = (type: string, value: number) => ({ deviceId: 'cuff-1', timestamp: '2024-05-01T10:00:00Z', type, value, unit: 'mm[Hg]' });
    const [systolic] = observations(generic, [reading('systolic', 128)]);
    const [diastolic] = observations(generic, [reading('diastolic', 84)]);
    assert.deepEqual(systolic!.meta, { profile: [`${VITALS}vitalsigns`] });
    const merged = mergeObservation(systolic!, diastolic!);
    assert.equal(merged.changed, true);
    assert.deepEqual(merged.observation.meta, { profile: [`${VITALS}bp`] });
    assert.deepEqual(
      merged.observation.component!.map((c) => [c.code.coding![0]!.code, c.valueQuantity!.value]),
      [
        ['8480-6', 128],
        ['8462-4', 84],
      ],
    );
    assert.deepEqual(observations(generic, [reading('systolic', 128), reading('diastolic', 84)])[0]!.component, merged.observation.component);
  });
});

describe('identities', () => {
  test('measurements of several devices must be split; groupByIdentity does it', () => {
    const mapping = compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir()]));
    const measurements: Measurement[] = [hrMessage(70, '2024-05-01T10:00:00Z', 'a'), hrMessage(71, '2024-05-01T10:00:00Z', 'b')].flatMap(
      (m) => mapping.normalize(m, { now: NOW }).measurements,
    );
    const mixed = mapping.toObservations(measurements, CONTEXT);
    assert.equal(mixed.observations.length, 1);
    assert.match(mixed.rejections[0]!.reason, /split with groupByIdentity/);
    const groups = groupByIdentity(measurements);
    assert.deepEqual(
      groups.map((g) => [g.deviceId, g.measurements.length]),
      [
        ['a', 1],
        ['b', 1],
      ],
    );
  });

  test('mergeObservation refuses Observations with different identifiers', () => {
    const mapping = compileMapping(definition([HEART_RATE_DEVICE], [heartRateFhir()]));
    const [a] = observations(mapping, [hrMessage(70, '2024-05-01T10:00:00Z')]);
    const [b] = observations(mapping, [hrMessage(70, '2024-05-01T10:00:01Z')]);
    assert.throws(() => mergeObservation(a!, b!), /same urn:vigil:ingest identifier/);
  });
});
