import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';

const device = (value: string, extra: object = {}) => ({ resourceType: 'Device', status: 'active', identifier: [{ system: 'urn:serial', value }], ...extra });

for (const driver of DRIVERS) {
  describe(`conditional interactions and PATCH (${driver})`, () => {
    const s = useServer(driver);

    it('conditional create: 201 new, 200 existing, 412 on several matches', async () => {
      const first = await request('POST', `${s.fhir}/Device`, device('c-1'), { 'if-none-exist': 'identifier=urn:serial|c-1' });
      assert.equal(first.status, 201);
      const again = await request('POST', `${s.fhir}/Device`, device('c-1'), { 'if-none-exist': 'identifier=urn:serial|c-1' });
      assert.equal(again.status, 200);
      assert.equal(again.body.id, first.body.id);
      await request('POST', `${s.fhir}/Device`, device('c-dup'));
      await request('POST', `${s.fhir}/Device`, device('c-dup'));
      const several = await request('POST', `${s.fhir}/Device`, device('c-dup'), { 'if-none-exist': 'identifier=urn:serial|c-dup' });
      assert.equal(several.status, 412);
      const bad = await request('POST', `${s.fhir}/Device`, device('c-2'), { 'if-none-exist': 'nonsense=1' });
      assert.equal(bad.status, 400);
    });

    it('concurrent conditional creates with the same criteria make one resource', async () => {
      const results = await Promise.all(
        Array.from({ length: 12 }, () => request('POST', `${s.fhir}/Device`, device('race-1'), { 'if-none-exist': 'identifier=urn:serial|race-1' })),
      );
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
      assert.equal(new Set(results.map((r) => r.body.id)).size, 1);
      const found = await request('GET', `${s.fhir}/Device?identifier=urn:serial|race-1`);
      assert.equal(found.body.entry.length, 1);
    });

    it('conditional update creates, then updates the single match, and refuses several', async () => {
      const created = await request('PUT', `${s.fhir}/Device?identifier=urn:serial|u-1`, device('u-1'));
      assert.equal(created.status, 201);
      const updated = await request('PUT', `${s.fhir}/Device?identifier=urn:serial|u-1`, device('u-1', { status: 'inactive' }));
      assert.equal(updated.status, 200);
      assert.equal(updated.body.id, created.body.id);
      assert.equal(updated.body.meta.versionId, '2');
      await request('POST', `${s.fhir}/Device`, device('u-1'));
      assert.equal((await request('PUT', `${s.fhir}/Device?identifier=urn:serial|u-1`, device('u-1'))).status, 412);
    });

    it('conditional delete removes every match', async () => {
      await request('POST', `${s.fhir}/Device`, device('d-1'));
      await request('POST', `${s.fhir}/Device`, device('d-1'));
      const res = await request('DELETE', `${s.fhir}/Device?identifier=urn:serial|d-1`);
      assert.equal(res.status, 200);
      assert.equal((await request('GET', `${s.fhir}/Device?identifier=urn:serial|d-1`)).body.entry.length, 0);
    });

    it('applies JSON Patch and FHIRPath Patch, validating the result', async () => {
      const d = (await request('POST', `${s.fhir}/Device`, device('p-1'))).body;
      const url = `${s.fhir}/Device/${d.id}`;
      const json = await request('PATCH', url, JSON.stringify([{ op: 'replace', path: '/status', value: 'inactive' }]), { 'content-type': 'application/json-patch+json' });
      assert.equal(json.status, 200, JSON.stringify(json.body));
      assert.equal(json.body.status, 'inactive');
      assert.equal(json.body.meta.versionId, '2');
      const fhirpath = await request('PATCH', url, {
        resourceType: 'Parameters',
        parameter: [{ name: 'operation', part: [
          { name: 'type', valueCode: 'add' }, { name: 'path', valueString: 'Device' }, { name: 'name', valueString: 'manufacturer' }, { name: 'value', valueString: 'Huawei' },
        ] }],
      });
      assert.equal(fhirpath.status, 200, JSON.stringify(fhirpath.body));
      assert.equal(fhirpath.body.manufacturer, 'Huawei');
      const breaking = await request('PATCH', url, JSON.stringify([{ op: 'replace', path: '/status', value: 'exploded' }]), { 'content-type': 'application/json-patch+json' });
      assert.equal(breaking.status, 400);
      assert.equal((await request('GET', url)).body.meta.versionId, '3');
      const stale = await request('PATCH', url, JSON.stringify([{ op: 'replace', path: '/status', value: 'active' }]), { 'content-type': 'application/json-patch+json', 'if-match': 'W/"1"' });
      assert.equal(stale.status, 412);
      const idChange = await request('PATCH', url, JSON.stringify([{ op: 'replace', path: '/id', value: 'other' }]), { 'content-type': 'application/json-patch+json' });
      assert.equal(idChange.status, 422);
      const conditional = await request('PATCH', `${s.fhir}/Device?identifier=urn:serial|p-1`, JSON.stringify([{ op: 'replace', path: '/status', value: 'active' }]), { 'content-type': 'application/json-patch+json' });
      assert.equal(conditional.status, 200);
      assert.equal(conditional.body.status, 'active');
    });

    it('validates required bindings on codes', async () => {
      const res = await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient', gender: 'robot', telecom: [{ system: 'pager2', value: '1' }] });
      assert.equal(res.status, 400);
      const expressions = res.body.issue.flatMap((i: any) => i.expression);
      assert.ok(expressions.includes('Patient.gender'));
      assert.ok(expressions.includes('Patient.telecom[0].system'));
    });
  });
}
