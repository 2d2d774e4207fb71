import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Observation, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { DRIVERS, request, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const START = Date.parse('2026-01-01T00:00:00Z');
const MINUTE = 60_000;

const part = (p: ParametersParameter, name: string): ParametersParameter | undefined => p.part?.find((x) => x.name === name);
const points = (series: ParametersParameter) => (series.part ?? []).filter((p) => p.name === 'point').map((p) => ({
  start: part(p, 'start')?.valueInstant,
  count: part(p, 'count')?.valueInteger,
  average: part(p, 'average')?.valueDecimal,
  minimum: part(p, 'minimum')?.valueDecimal,
  maximum: part(p, 'maximum')?.valueDecimal,
}));
const seriesOf = (result: Parameters, code: string) => result.parameter?.find((s) => part(s, 'code')?.valueCoding?.code === code);

function pulse(i: number, value: number, unit = '/min'): Observation {
  return {
    resourceType: 'Observation', id: `hr-${i}`, status: 'final', code: { coding: [{ system: LOINC, code: '8867-4' }] },
    subject: { reference: 'Patient/p1' }, effectiveDateTime: new Date(START + i * MINUTE).toISOString(),
    valueQuantity: { value, unit, system: UCUM, code: unit },
  };
}

function bloodPressure(i: number, systolic: number, diastolic: number): Observation {
  const component = (code: string, value: number) => ({ code: { coding: [{ system: LOINC, code }] }, valueQuantity: { value, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' } });
  return {
    resourceType: 'Observation', id: `bp-${i}`, status: 'final', code: { coding: [{ system: LOINC, code: '85354-9' }] },
    subject: { reference: 'Patient/p1' }, effectiveDateTime: new Date(START + i * MINUTE).toISOString(),
    component: [component('8480-6', systolic), component('8462-4', diastolic)],
  };
}

for (const driver of DRIVERS) {
  describe(`Observation/$timeseries (${driver})`, () => {
    const s = useServer(driver);
    const period = `period=2026-01-01T00:00:00Z/2026-01-01T01:00:00Z`;

    before(async () => {
      // 60 one-minute pulse readings (value = minute), one of them entered in error and one of another patient
      const resources: Observation[] = Array.from({ length: 60 }, (_, i) => pulse(i, i));
      resources.push({ ...pulse(60, 1000), id: 'hr-error', status: 'entered-in-error', effectiveDateTime: new Date(START + 5 * MINUTE).toISOString() });
      resources.push({ ...pulse(61, 500), id: 'hr-other', subject: { reference: 'Patient/p2' }, effectiveDateTime: new Date(START + 5 * MINUTE).toISOString() });
      resources.push(bloodPressure(0, 120, 80), bloodPressure(30, 140, 90));
      const bundle = { resourceType: 'Bundle', type: 'transaction', entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `Observation/${r.id}` } })) };
      const res = await request('POST', s.fhir, bundle);
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    });

    it('buckets one subject\'s values into round intervals with count, average, minimum and maximum', async () => {
      const res = await request<Parameters>('GET', `${s.fhir}/Observation/$timeseries?patient=p1&code=8867-4&system=${LOINC}&${period}&points=7`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const series = seriesOf(res.body, '8867-4') as ParametersParameter;
      assert.equal(part(series, 'interval')?.valueQuantity?.value, 600);
      assert.deepEqual(part(series, 'unit')?.valueCoding, { system: UCUM, code: '/min' });
      assert.deepEqual(points(series), Array.from({ length: 6 }, (_, b) => ({
        start: new Date(START + b * 10 * MINUTE).toISOString(), count: 10, average: b * 10 + 4.5, minimum: b * 10, maximum: b * 10 + 9,
      })));
    });

    it('gives a blood-pressure panel as its component series', async () => {
      const res = await request<Parameters>('GET', `${s.fhir}/Observation/$timeseries?patient=p1&coding=${LOINC}|85354-9&${period}&points=3`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(points(seriesOf(res.body, '8480-6') as ParametersParameter).map((p) => p.average), [120, 140]);
      assert.deepEqual(points(seriesOf(res.body, '8462-4') as ParametersParameter).map((p) => p.average), [80, 90]);
    });

    it('answers an empty result for a period without data, and refuses unbounded or bad requests', async () => {
      const empty = await request<Parameters>('GET', `${s.fhir}/Observation/$timeseries?patient=p1&code=8867-4&system=${LOINC}&period=2025-01-01/2025-01-02`);
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.body.parameter, []);
      for (const [query, path] of [
        [`patient=p1&code=8867-4&system=${LOINC}`, 'period'],
        [`code=8867-4&system=${LOINC}&${period}`, 'subject'],
        [`patient=p1&${period}&points=0`, 'points'],
        [`patient=p1&${period}&bucket=5`, 'bucket'],
      ]) {
        const res = await request('GET', `${s.fhir}/Observation/$timeseries?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.resourceType, 'OperationOutcome');
        assert.deepEqual(res.body.issue[0].expression, [path], query);
      }
    });
  });
}
