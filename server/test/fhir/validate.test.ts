import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { DRIVERS, request, useServer } from '../support.ts';

const OBSERVATION = 'https://vigil.health/fhir/StructureDefinition/vigil-device-observation';
const DEVICE = 'https://vigil.health/fhir/StructureDefinition/vigil-wearable-device';

const device = { resourceType: 'Device', identifier: [{ system: 'urn:vigil:serial', value: 'SN-42' }], status: 'active' };
const reading = {
  resourceType: 'Observation',
  identifier: [{ system: 'urn:vigil:ingest', value: 'r1' }],
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  subject: { reference: 'Patient/p1' },
  effectiveDateTime: '2025-03-01T08:00:00Z',
  valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  device: { reference: 'Device/d1' },
};

const parameters = (...parameter: object[]) => ({ resourceType: 'Parameters', parameter });

/** Issues as `severity code expression`. */
const issues = (outcome: OperationOutcome): string[] => (outcome.issue ?? []).map((i) => `${i.severity} ${i.code} ${i.expression?.[0] ?? ''}`.trim());
const ALL_OK = ['information informational'];

for (const driver of DRIVERS) {
  describe(`$validate (${driver})`, () => {
    const s = useServer(driver);
    let deviceId = '';

    before(async () => {
      deviceId = (await request('POST', `${s.fhir}/Device`, device)).body.id;
    });

    const validate = async (path: string, body?: unknown, status = 200) => {
      const res = await request('POST', `${s.fhir}/${path}`, body);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.resourceType, 'OperationOutcome');
      return res.body as OperationOutcome;
    };

    it('answers All OK for a valid resource, sent as the body or as a Parameters', async () => {
      const outcome = await validate('Device/$validate', device);
      assert.deepEqual(issues(outcome), ALL_OK);
      assert.equal(outcome.issue?.[0].diagnostics, 'All OK');
      assert.deepEqual(issues(await validate('Device/$validate', parameters({ name: 'resource', resource: device }))), ALL_OK);
    });

    it('answers 200 with the errors of an invalid resource, and stores nothing', async () => {
      const outcome = await validate('Device/$validate', { ...device, identifier: [{ value: 'SN-43' }], status: 'on', colour: 'red' });
      const found = issues(outcome);
      assert.ok(found.includes('error structure Device.colour'), found.join('\n'));
      assert.ok(found.includes('error code-invalid Device.status'), found.join('\n'));
      assert.equal((await request('GET', `${s.fhir}/Device?identifier=SN-43`)).body.entry.length, 0);
    });

    it('validates against the profiles the resource claims', async () => {
      const claimed = { ...reading, meta: { profile: [OBSERVATION] } };
      assert.deepEqual(issues(await validate('Observation/$validate', claimed)), ALL_OK);
      assert.deepEqual(issues(await validate('Observation/$validate', { ...claimed, device: undefined })), ['error required Observation.device']);
      const hr = { ...claimed, valueQuantity: { ...reading.valueQuantity, code: 'kg' } };
      const [issue] = (await validate('Observation/$validate', hr)).issue ?? [];
      assert.equal(issue.code, 'invariant');
      assert.deepEqual(issue.expression, ['Observation.valueQuantity']);
      assert.match(issue.diagnostics ?? '', /vigil-obs-hr: Heart rate \(LOINC 8867-4\) is in \/min/);
    });

    it('validates against the profile parameter, in a Parameters or in the URL', async () => {
      const bare = { ...device, identifier: [{ value: 'SN-44' }] };
      assert.deepEqual(issues(await validate('Device/$validate', bare)), ALL_OK);
      const expected = ['error required Device.identifier[0].system'];
      assert.deepEqual(issues(await validate('Device/$validate', parameters({ name: 'resource', resource: bare }, { name: 'profile', valueUri: DEVICE }))), expected);
      assert.deepEqual(issues(await validate('Device/$validate', parameters({ name: 'resource', resource: bare }, { name: 'profile', valueCanonical: `${DEVICE}|0.1.0` }))), expected);
      assert.deepEqual(issues(await validate(`Device/$validate?profile=${encodeURIComponent(DEVICE)}`, bare)), expected);
      assert.deepEqual(issues(await validate(`Device/$validate?profile=${encodeURIComponent(OBSERVATION)}`, device)), ['error structure Device.meta.profile']);
    });

    it('rejects an unknown profile, mode or parameter and a request without a resource', async () => {
      const unknownProfile = await validate('Device/$validate', parameters({ name: 'resource', resource: device }, { name: 'profile', valueUri: 'http://hl7.org/fhir/StructureDefinition/vitalsigns' }), 400);
      assert.deepEqual(issues(unknownProfile), ['error invalid profile']);
      await validate('Device/$validate', parameters({ name: 'resource', resource: device }, { name: 'mode', valueCode: 'profile' }), 400);
      await validate('Device/$validate?colour=red', device, 400);
      await validate('Device/$validate', parameters({ name: 'resource', resource: device }, { name: 'resource', resource: device }), 400);
      await validate('Device/$validate', undefined, 400);
      await validate('Device/$validate', parameters({ name: 'mode', valueCode: 'create' }), 400);
      await validate('Device/$validate', reading, 400);
      assert.equal((await request('POST', `${s.fhir}/Unknown/$validate`, device)).status, 404);
    });

    it('mode create validates a new resource at type level only', async () => {
      assert.deepEqual(issues(await validate('Device/$validate', parameters({ name: 'resource', resource: device }, { name: 'mode', valueCode: 'create' }))), ALL_OK);
      assert.deepEqual(issues(await validate('Device/$validate?mode=create', { ...device, identifier: [{ system: 'urn:vigil:serial', value: 42 }] })), ['error structure Device.identifier[0].value']);
      await validate(`Device/${deviceId}/$validate?mode=create`, device, 400);
    });

    it('mode update needs an id that matches the instance', async () => {
      assert.deepEqual(issues(await validate(`Device/${deviceId}/$validate?mode=update`, { ...device, id: deviceId })), ALL_OK);
      assert.deepEqual(issues(await validate(`Device/${deviceId}/$validate?mode=update`, device)), ALL_OK);
      assert.deepEqual(issues(await validate('Device/$validate', parameters({ name: 'resource', resource: { ...device, id: 'new-id' } }, { name: 'mode', valueCode: 'update' }))), ALL_OK);
      assert.deepEqual(issues(await validate('Device/$validate?mode=update', device)), ['error required Device.id']);
      assert.deepEqual(issues(await validate(`Device/${deviceId}/$validate?mode=update`, { ...device, id: 'other' })), ['error invalid Device.id']);
      assert.deepEqual(issues(await validate(`Device/${deviceId}/$validate`, { ...device, id: 'other' })), ['error invalid Device.id']);
      assert.deepEqual(issues(await validate(`Device/${deviceId}/$validate`, { ...device, status: 'on' })), ['error code-invalid Device.status']);
    });

    it('mode delete checks that the resource exists', async () => {
      assert.deepEqual(issues(await validate(`Device/${deviceId}/$validate?mode=delete`)), ALL_OK);
      assert.deepEqual(issues(await validate(`Device/${deviceId}/$validate`, parameters({ name: 'mode', valueCode: 'delete' }))), ALL_OK);
      assert.deepEqual(issues(await validate('Device/$validate?mode=delete', { ...device, id: deviceId })), ALL_OK);
      assert.deepEqual(issues(await validate('Device/no-such-device/$validate?mode=delete')), ['error not-found Device.id']);
      const gone = (await request('POST', `${s.fhir}/Device`, device)).body.id;
      assert.equal((await request('DELETE', `${s.fhir}/Device/${gone}`)).status, 200);
      assert.deepEqual(issues(await validate(`Device/${gone}/$validate?mode=delete`)), ['error deleted Device.id']);
      await validate('Device/$validate?mode=delete', device, 400);
      assert.equal((await request('GET', `${s.fhir}/Device/${deviceId}`)).status, 200);
    });
  });
}
