import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';
import { authorizationCodeFlow } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'correct horse battery';
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const obs = (patient: string, value = 70, id?: string) => ({
  resourceType: 'Observation', ...(id ? { id } : {}), status: 'final', subject: { reference: `Patient/${patient}` },
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});
const bundle = (type: 'batch' | 'transaction', entry: unknown[]) => ({ resourceType: 'Bundle', type, entry });
const statuses = (res: { body: any }): string[] => res.body.entry.map((e: any) => e.response.status.split(' ')[0]);
const ids = (searchset: any): string[] => (searchset.entry ?? []).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();

for (const driver of DRIVERS) {
  describe(`batch and transaction entries are checked one by one (${driver})`, () => {
    const s = useServer(driver);
    let patient = ''; // patient/*.cruds for Patient/tx-a
    let doctor = ''; // user/*.cruds for Practitioner/tx-doc, on tx-a's care team only
    const count = async (p: string) => (await request('GET', `${s.fhir}/Observation?subject=Patient/${p}&_summary=count`)).body.total as number;

    before(async () => {
      const put = async (r: any) => assert.ok([200, 201].includes((await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r)).status), r.id);
      await put({ resourceType: 'Patient', id: 'tx-a', name: [{ family: 'Alpha' }] });
      await put({ resourceType: 'Patient', id: 'tx-b', name: [{ family: 'Bravo' }] });
      await put({ resourceType: 'Practitioner', id: 'tx-doc' });
      await put({ resourceType: 'CareTeam', id: 'tx-team', status: 'active', subject: { reference: 'Patient/tx-a' }, participant: [{ member: { reference: 'Practitioner/tx-doc' } }] });
      await put(obs('tx-a', 70, 'tx-obs-a'));
      await put(obs('tx-b', 70, 'tx-obs-b'));
      for (const [username, fhirUser] of [['tx-alpha', 'Patient/tx-a'], ['tx-doc', 'Practitioner/tx-doc']]) {
        assert.equal((await request('POST', `${s.base}/admin/users`, { username, password: PASSWORD, fhirUser })).status, 201);
      }
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'tx-app', redirect_uris: [REDIRECT], scopes: 'patient/*.cruds user/*.cruds' })).status, 201);
      const flow = async (username: string, scope: string) => {
        const res = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'tx-app', redirectUri: REDIRECT, scope, username, password: PASSWORD });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.access_token as string;
      };
      patient = await flow('tx-alpha', 'launch/patient patient/*.cruds');
      doctor = await flow('tx-doc', 'user/*.cruds');
    });

    it('lets a patient post a transaction within their own compartment, urn:uuid references included', async () => {
      const res = await request('POST', s.fhir, bundle('transaction', [
        { fullUrl: 'urn:uuid:c5a1b3e0-0000-4000-8000-000000000001', resource: obs('tx-a', 71), request: { method: 'POST', url: 'Observation' } },
        { resource: { ...obs('tx-a', 72), hasMember: [{ reference: 'urn:uuid:c5a1b3e0-0000-4000-8000-000000000001' }] }, request: { method: 'POST', url: 'Observation' } },
        { resource: obs('tx-a', 73, 'tx-obs-a'), request: { method: 'PUT', url: 'Observation/tx-obs-a' } },
        { request: { method: 'GET', url: 'Observation?code=http://loinc.org|8867-4' } },
      ]), as(patient));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(statuses(res), ['201', '201', '200', '200']);
      const found = ids(res.body.entry[3].resource);
      assert.ok(found.includes('Observation/tx-obs-a'));
      assert.ok(!found.includes('Observation/tx-obs-b'), 'a search entry is limited like a search');
    });

    it('refuses a patient\'s whole transaction for one entry outside the compartment, naming it, and writes nothing', async () => {
      const before = await count('tx-a');
      const created = await request('POST', s.fhir, bundle('transaction', [
        { resource: obs('tx-a', 74), request: { method: 'POST', url: 'Observation' } },
        { resource: obs('tx-b', 75), request: { method: 'POST', url: 'Observation' } },
      ]), as(patient));
      assert.equal(created.status, 403, JSON.stringify(created.body));
      assert.equal(created.body.resourceType, 'OperationOutcome');
      assert.match(created.body.issue[0].diagnostics, /^Bundle\.entry\[1\]/);
      assert.deepEqual(created.body.issue[0].expression, ['Bundle.entry[1]']);

      const hidden = await request('POST', s.fhir, bundle('transaction', [
        { resource: obs('tx-a', 76), request: { method: 'POST', url: 'Observation' } },
        { resource: obs('tx-a', 77, 'tx-obs-b'), request: { method: 'PUT', url: 'Observation/tx-obs-b' } },
      ]), as(patient));
      assert.equal(hidden.status, 404, 'another patient\'s resource looks absent, as to a single PUT');
      assert.deepEqual(hidden.body.issue[0].expression, ['Bundle.entry[1]']);

      const moved = await request('POST', s.fhir, bundle('transaction', [
        { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify([{ op: 'replace', path: '/subject/reference', value: 'Patient/tx-b' }])).toString('base64') }, request: { method: 'PATCH', url: 'Observation/tx-obs-a' } },
      ]), as(patient));
      assert.equal(moved.status, 403, 'a patch may not move a resource into another compartment');
      assert.equal(await count('tx-a'), before, 'nothing was written');
      assert.equal((await request('GET', `${s.fhir}/Observation/tx-obs-b`)).body.valueQuantity.value, 70);
    });

    it('answers a patient\'s batch entry by entry, as the single requests would be answered', async () => {
      const res = await request('POST', s.fhir, bundle('batch', [
        { request: { method: 'GET', url: 'Patient/tx-b' } },
        { request: { method: 'GET', url: 'Observation/tx-obs-a' } },
        { resource: obs('tx-b', 80), request: { method: 'POST', url: 'Observation' } },
        { resource: obs('tx-a', 81), request: { method: 'POST', url: 'Observation' } },
        { request: { method: 'DELETE', url: 'Observation/tx-obs-b' } },
        { request: { method: 'GET', url: 'Observation?subject=Patient/tx-b' } },
        { request: { method: 'PUT', url: 'Observation?subject=Patient/tx-a' }, resource: obs('tx-a', 82) },
        { resource: { resourceType: 'Subscription', status: 'requested', reason: 'x', criteria: 'Observation', channel: { type: 'websocket' } }, request: { method: 'POST', url: 'Subscription' } },
      ]), as(patient));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(statuses(res), ['404', '200', '403', '201', '404', '200', '403', '403']);
      assert.equal(res.body.entry[0].response.outcome.resourceType, 'OperationOutcome');
      assert.deepEqual(ids(res.body.entry[5].resource), []);
      assert.equal((await request('GET', `${s.fhir}/Observation/tx-obs-b`)).status, 200, 'still there');
    });

    it('resolves a conditional reference only among what the caller may see', async () => {
      const probe = await request('POST', s.fhir, bundle('transaction', [
        { resource: { ...obs('tx-a', 90), subject: { reference: 'Patient?family=Bravo' } }, request: { method: 'POST', url: 'Observation' } },
      ]), as(patient));
      assert.equal(probe.status, 400, 'another patient is not found, although they exist');
      assert.match(probe.body.issue[0].diagnostics, /matches nothing/);
      const own = await request('POST', s.fhir, bundle('transaction', [
        { resource: { ...obs('tx-a', 91), subject: { reference: 'Patient?family=Alpha' } }, request: { method: 'POST', url: 'Observation' } },
      ]), as(patient));
      assert.equal(own.status, 200, JSON.stringify(own.body));
      const location = own.body.entry[0].response.location as string;
      assert.equal((await request('GET', `${s.fhir}/${location.split('/_history')[0]}`)).body.subject.reference, 'Patient/tx-a');
    });

    it('lets a practitioner write for their care team\'s patients only, and read only theirs', async () => {
      const ok = await request('POST', s.fhir, bundle('transaction', [
        { resource: obs('tx-a', 100), request: { method: 'POST', url: 'Observation' } },
        { request: { method: 'GET', url: 'Observation/tx-obs-a' } },
      ]), as(doctor));
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const refused = await request('POST', s.fhir, bundle('transaction', [
        { resource: obs('tx-a', 101), request: { method: 'POST', url: 'Observation' } },
        { request: { method: 'GET', url: 'Observation/tx-obs-b' } },
      ]), as(doctor));
      assert.equal(refused.status, 404);
      assert.deepEqual(refused.body.issue[0].expression, ['Bundle.entry[1]']);
      const batch = await request('POST', s.fhir, bundle('batch', [
        { resource: obs('tx-b', 102), request: { method: 'POST', url: 'Observation' } },
        { request: { method: 'GET', url: 'Observation?code=http://loinc.org|8867-4&_count=1000' } },
        { request: { method: 'DELETE', url: 'Observation/tx-obs-b' } },
      ]), as(doctor));
      assert.deepEqual(statuses(batch), ['403', '200', '404']);
      const seen = ids(batch.body.entry[1].resource);
      assert.ok(seen.length > 0 && seen.every((id) => id !== 'Observation/tx-obs-b'));
      assert.equal(await count('tx-b'), 1, 'nothing written for a patient outside the care team');
    });
  });
}
