import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { authorizationCodeFlow } from '../auth/smart-flow.ts';
import { DRIVERS, request, useServer } from '../support.ts';

const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'correct horse battery';
const ACK = 'https://vigil.health/fhir/StructureDefinition/acknowledgement';
const SD = 'https://vigil.health/fhir/StructureDefinition/';
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const ack = (resource: any): { by?: string; at?: string } | undefined => {
  const ext = resource.extension?.find((e: any) => e.url === ACK);
  return ext && { by: ext.extension.find((e: any) => e.url === 'by')?.valueReference.reference, at: ext.extension.find((e: any) => e.url === 'at')?.valueInstant };
};
const forged = { url: ACK, extension: [{ url: 'by', valueReference: { reference: 'Practitioner/someone-else' } }, { url: 'at', valueInstant: '2020-01-01T00:00:00Z' }] };

const flag = (id: string) => ({
  resourceType: 'Flag', id, meta: { profile: [`${SD}vigil-alert-flag`] }, status: 'active',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'clinical' }] }],
  code: { coding: [{ system: 'https://vigil.health/fhir/CodeSystem/alert', code: 'news2-high' }] },
  subject: { reference: 'Patient/ack-p' }, period: { start: '2025-01-01T10:00:00Z' }, author: { reference: 'Device/ack-bot' },
});
const communication = (id: string) => ({
  resourceType: 'Communication', id, meta: { profile: [`${SD}vigil-alert-communication`] }, status: 'in-progress',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'alert' }] }],
  priority: 'urgent', subject: { reference: 'Patient/ack-p' }, about: [{ reference: 'Flag/ack-flag-1' }],
  recipient: [{ reference: 'Practitioner/ack-doc' }], payload: [{ contentString: 'NEWS2 7: urgent review' }],
});

for (const driver of DRIVERS) {
  describe(`acknowledging alerts records who and when (${driver})`, () => {
    const s = useServer(driver);
    let doctor = '';
    /** The same user through an app that also holds system scopes: conditional writes need a reach without compartment limits. */
    let doctorUnlimited = '';
    const put = async (r: any, headers: Record<string, string> = {}) => {
      const res = await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r, headers);
      assert.ok([200, 201].includes(res.status), JSON.stringify(res.body));
      return res.body;
    };

    before(async () => {
      await put({ resourceType: 'Patient', id: 'ack-p' });
      await put({ resourceType: 'Practitioner', id: 'ack-doc' });
      await put({ resourceType: 'Device', id: 'ack-bot' });
      await put({ resourceType: 'CareTeam', id: 'ack-team', status: 'active', subject: { reference: 'Patient/ack-p' }, participant: [{ member: { reference: 'Practitioner/ack-doc' } }] });
      for (const id of ['ack-flag-1', 'ack-flag-2', 'ack-flag-3', 'ack-flag-4', 'ack-flag-5']) await put(flag(id));
      for (const id of ['ack-comm-1', 'ack-comm-2']) await put(communication(id));
      await put(flag('ack-flag-6'));
      await put(flag('ack-flag-7'));
      await put({ ...communication('ack-comm-4'), about: [{ reference: 'Flag/ack-flag-7' }] });
      await put({ ...communication('ack-comm-3'), about: [{ reference: 'Flag/ack-flag-6' }, { reference: 'Observation/ack-evidence' }] });
      assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'ack-doc', password: PASSWORD, fhirUser: 'Practitioner/ack-doc' })).status, 201);
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'ack-app', redirect_uris: [REDIRECT], scopes: 'user/*.cruds' })).status, 201);
      const res = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'ack-app', redirectUri: REDIRECT, scope: 'user/*.cruds', username: 'ack-doc', password: PASSWORD });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      doctor = res.body.access_token;
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'ack-console', redirect_uris: [REDIRECT], scopes: 'user/*.cruds system/*.cruds' })).status, 201);
      const unlimited = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'ack-console', redirectUri: REDIRECT, scope: 'user/*.cruds system/*.cruds', username: 'ack-doc', password: PASSWORD });
      assert.equal(unlimited.status, 200, JSON.stringify(unlimited.body));
      doctorUnlimited = unlimited.body.access_token;
    });

    it('PUT of a Flag from active to inactive: the server records the practitioner and the time, and ends the period', async () => {
      const before = new Date().toISOString();
      const updated = await put({ ...flag('ack-flag-1'), status: 'inactive', extension: [forged] }, as(doctor));
      const after = new Date().toISOString();
      const recorded = ack(updated);
      assert.equal(recorded?.by, 'Practitioner/ack-doc', 'the client\'s own value is replaced');
      assert.ok(recorded?.at && recorded.at >= before && recorded.at <= after, JSON.stringify(recorded));
      assert.equal(updated.period.end, recorded?.at);
      assert.equal(updated.extension.length, 1);
      assert.deepEqual(ack((await request('GET', `${s.fhir}/Flag/ack-flag-1`)).body), recorded, 'stored, not only answered');

      // later updates keep the acknowledgement, whatever they send for it
      const later = await put({ ...updated, extension: undefined, period: { start: updated.period.start, end: updated.period.end } }, as(doctor));
      assert.deepEqual(ack(later), recorded);
    });

    it('PATCH of a Communication to completed (JSON Patch and FHIRPath Patch) records the acknowledgement', async () => {
      const jsonPatch = await request('PATCH', `${s.fhir}/Communication/ack-comm-1`, [{ op: 'replace', path: '/status', value: 'completed' }], { ...as(doctor), 'content-type': 'application/json-patch+json' });
      assert.equal(jsonPatch.status, 200, JSON.stringify(jsonPatch.body));
      assert.equal(ack(jsonPatch.body)?.by, 'Practitioner/ack-doc');
      const fhirPathPatch = await request('PATCH', `${s.fhir}/Flag/ack-flag-2`, {
        resourceType: 'Parameters',
        parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Flag.status' }, { name: 'value', valueCode: 'inactive' }] }],
      }, as(doctor));
      assert.equal(fhirPathPatch.status, 200, JSON.stringify(fhirPathPatch.body));
      assert.equal(ack(fhirPathPatch.body)?.by, 'Practitioner/ack-doc');
      assert.ok(fhirPathPatch.body.period.end);
    });

    it('conditional PUT (alone and in a transaction) applies the same rule as PUT by id', async () => {
      const conditional = await request('PUT', `${s.fhir}/Flag?_id=ack-flag-4`, { ...flag('ack-flag-4'), status: 'inactive', extension: [forged] }, as(doctorUnlimited));
      assert.equal(conditional.status, 200, JSON.stringify(conditional.body));
      assert.equal(ack(conditional.body)?.by, 'Practitioner/ack-doc');
      assert.ok(conditional.body.period.end);
      assert.equal(ack((await request('GET', `${s.fhir}/Flag/ack-flag-4`)).body)?.by, 'Practitioner/ack-doc');

      const inTransaction = await request('POST', s.fhir, { resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { ...flag('ack-flag-5'), status: 'inactive' }, request: { method: 'PUT', url: 'Flag?_id=ack-flag-5' } },
      ] }, as(doctorUnlimited));
      assert.equal(inTransaction.status, 200, JSON.stringify(inTransaction.body));
      assert.equal(ack((await request('GET', `${s.fhir}/Flag/ack-flag-5`)).body)?.by, 'Practitioner/ack-doc');

      const created = await request('PUT', `${s.fhir}/Communication?_id=ack-comm-none`, { ...communication('x'), id: undefined, status: 'completed', extension: [forged] }, as(doctorUnlimited));
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(ack(created.body), undefined, 'a conditional create drops a forged acknowledgement');
    });

    it('a clinician completing the alert\'s Communication ends the Flag it is about, recorded as theirs', async () => {
      const before = new Date().toISOString();
      const completed = await put({ ...communication('ack-comm-3'), about: [{ reference: 'Flag/ack-flag-6' }, { reference: 'Observation/ack-evidence' }], status: 'completed' }, as(doctor));
      assert.equal(ack(completed)?.by, 'Practitioner/ack-doc');
      const ended = (await request('GET', `${s.fhir}/Flag/ack-flag-6`)).body;
      assert.equal(ended.status, 'inactive');
      assert.equal(ack(ended)?.by, 'Practitioner/ack-doc');
      assert.ok(ended.period.end >= before);
      assert.equal(ended.period.end, ack(ended)?.at);
      // saving it again (no transition) leaves the Flag alone
      await put(completed, as(doctor));
      assert.equal((await request('GET', `${s.fhir}/Flag/ack-flag-6`)).body.meta.versionId, ended.meta.versionId);
      // a client acting on its own acknowledges nothing
      await put({ ...communication('ack-comm-4'), about: [{ reference: 'Flag/ack-flag-7' }], status: 'completed' });
      assert.equal((await request('GET', `${s.fhir}/Flag/ack-flag-7`)).body.status, 'active');
    });

    it('records nothing for other changes, nor for clients acting on their own, and refuses a malformed acknowledgement', async () => {
      const stillActive = await put({ ...flag('ack-flag-3'), extension: [forged] }, as(doctor));
      assert.equal(ack(stillActive), undefined, 'no transition, no acknowledgement; the forged one is dropped');
      const bySystem = await put({ ...flag('ack-flag-3'), status: 'inactive' });
      assert.equal(ack(bySystem), undefined, 'a system client is not a user');
      assert.equal(bySystem.period.end, undefined);
      const created = await request('POST', `${s.fhir}/Communication`, { ...communication('x'), id: undefined, status: 'completed', extension: [forged] }, as(doctor));
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(ack(created.body), undefined, 'a create acknowledges nothing');

      const inTransaction = await request('POST', s.fhir, { resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { ...communication('ack-comm-2'), status: 'completed' }, request: { method: 'PUT', url: 'Communication/ack-comm-2' } },
      ] }, as(doctor));
      assert.equal(inTransaction.status, 200, JSON.stringify(inTransaction.body));
      assert.equal(ack((await request('GET', `${s.fhir}/Communication/ack-comm-2`)).body)?.by, 'Practitioner/ack-doc');

      // the profiles accept the extension only in its shape (bots and other server code write through the store)
      const malformed = await request('POST', `${s.fhir}/Flag/$validate`, { ...flag('v'), extension: [{ url: ACK, extension: [{ url: 'by', valueReference: { reference: 'Device/ack-bot' } }] }] });
      assert.equal(malformed.status, 200);
      const issues = malformed.body.issue.filter((i: any) => i.severity === 'error').map((i: any) => i.diagnostics).join(' ');
      assert.match(issues, /acknowledgement/);
    });
  });
}
