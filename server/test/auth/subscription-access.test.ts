import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';
import { connect, observation, startReceiver, subscribe, waitFor, type Receiver } from '../subscriptions/helpers.ts';
import { authorizationCodeFlow } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'correct horse battery';
const OWNER = 'https://vigil.health/fhir/StructureDefinition/subscription-owner';
const ENV = { VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true', VIGIL_OUTBOX_POLL_MS: '200' };
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const subjects = (bodies: string[]): string[] => bodies.filter(Boolean).map((b) => JSON.parse(b).subject.reference);

for (const driver of DRIVERS) {
  describe(`subscriptions deliver only what their owner may read (${driver})`, () => {
    const s = useServer(driver, ENV);
    let receiver: Receiver;
    let patient = ''; // patient/*.cruds for Patient/sa-a
    let doctor = ''; // user/*.cruds for Practitioner/sa-doc, on sa-a's care team only

    before(async () => {
      receiver = await startReceiver();
      const put = async (r: any) => assert.ok([200, 201].includes((await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r)).status), r.id);
      await put({ resourceType: 'Patient', id: 'sa-a' });
      await put({ resourceType: 'Patient', id: 'sa-b' });
      await put({ resourceType: 'Practitioner', id: 'sa-doc' });
      await put({ resourceType: 'CareTeam', id: 'sa-team', status: 'active', subject: { reference: 'Patient/sa-a' }, participant: [{ member: { reference: 'Practitioner/sa-doc' } }] });
      for (const [username, fhirUser] of [['sa-alpha', 'Patient/sa-a'], ['sa-doc', 'Practitioner/sa-doc']]) {
        assert.equal((await request('POST', `${s.base}/admin/users`, { username, password: PASSWORD, fhirUser })).status, 201);
      }
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'sa-app', redirect_uris: [REDIRECT], scopes: 'patient/*.cruds user/*.cruds' })).status, 201);
      const flow = async (username: string, scope: string) => {
        const res = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'sa-app', redirectUri: REDIRECT, scope, username, password: PASSWORD });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body.access_token as string;
      };
      patient = await flow('sa-alpha', 'launch/patient patient/*.cruds');
      doctor = await flow('sa-doc', 'user/*.cruds');
    });
    after(() => receiver.close());

    /** Writes an Observation for sa-b, then one for sa-a, as the system; resolves once the owner's notification for sa-a arrived. */
    async function otherThenOwn(seen: () => string[]): Promise<void> {
      const before = seen().length;
      await request('POST', `${s.fhir}/Observation`, observation('Patient/sa-b'));
      await request('POST', `${s.fhir}/Observation`, observation('Patient/sa-a'));
      // notifications of one subscription follow commit order: sa-b's would have come first
      await waitFor('the notification about sa-a', () => seen().slice(before).includes('Patient/sa-a'));
    }

    it('a patient\'s subscription never receives another patient\'s Observation; its owner is the server\'s to say', async () => {
      const forged = { url: OWNER, extension: [{ url: 'user', valueReference: { reference: 'Practitioner/sa-doc' } }, { url: 'client', valueString: 'x' }, { url: 'scope', valueString: 'system/*.*' }] };
      const sub = await subscribe(s.fhir, { criteria: 'Observation', extension: [forged], channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' } }, 'active', as(patient));
      const owner = sub.extension.find((e: any) => e.url === OWNER);
      assert.deepEqual(owner.extension.find((e: any) => e.url === 'user').valueReference, { reference: 'Patient/sa-a' });
      assert.equal(owner.extension.find((e: any) => e.url === 'scope').valueString, 'patient/*.cruds');
      receiver.received.length = 0;
      await otherThenOwn(() => subjects(receiver.received.map((r) => r.body)));
      assert.deepEqual(subjects(receiver.received.map((r) => r.body)), ['Patient/sa-a']);
      assert.equal((await request('PUT', `${s.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' }, as(patient))).status, 200);
    });

    it('refuses criteria that name a patient the creator may not read', async () => {
      const named = await request('POST', `${s.fhir}/Subscription`, {
        resourceType: 'Subscription', status: 'requested', reason: 'x', criteria: 'Observation?patient=Patient/sa-b', channel: { type: 'rest-hook', endpoint: receiver.url },
      }, as(patient));
      assert.equal(named.status, 403);
      assert.deepEqual(named.body.issue[0].expression, ['Subscription.criteria']);
      const listed = await request('POST', `${s.fhir}/Subscription`, {
        resourceType: 'Subscription', status: 'off', reason: 'x', criteria: 'Observation?subject=Patient/sa-a,Patient/sa-b', channel: { type: 'rest-hook', endpoint: receiver.url },
      }, as(doctor));
      assert.equal(listed.status, 403, 'one patient outside the care team is enough');
      const own = await request('POST', `${s.fhir}/Subscription`, {
        resourceType: 'Subscription', status: 'off', reason: 'x', criteria: 'Observation?subject=Patient/sa-a', channel: { type: 'rest-hook', endpoint: receiver.url },
      }, as(doctor));
      assert.equal(own.status, 201, JSON.stringify(own.body));
    });

    it('a practitioner\'s subscription delivers only their care team patients\' data', async () => {
      const sub = await subscribe(s.fhir, { criteria: 'Observation?code=http://loinc.org|8867-4', channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' } }, 'active', as(doctor));
      receiver.received.length = 0;
      await otherThenOwn(() => subjects(receiver.received.map((r) => r.body)));
      assert.deepEqual(subjects(receiver.received.map((r) => r.body)), ['Patient/sa-a']);
      assert.equal((await request('DELETE', `${s.fhir}/Subscription/${sub.id}`, undefined, as(doctor))).status, 200);
    });

    it('keeps each subscription to its owner: reads, searches, $status, updates, patches and transactions', async () => {
      const mine = await request('POST', `${s.fhir}/Subscription`, { resourceType: 'Subscription', status: 'off', reason: 'x', criteria: 'Observation', channel: { type: 'websocket' } }, as(patient));
      assert.equal(mine.status, 201);
      const system = await request('POST', `${s.fhir}/Subscription`, { resourceType: 'Subscription', status: 'off', reason: 'x', criteria: 'Patient', channel: { type: 'websocket' } });
      assert.equal((await request('GET', `${s.fhir}/Subscription/${system.body.id}`, undefined, as(patient))).status, 404);
      assert.equal((await request('GET', `${s.fhir}/Subscription/${mine.body.id}`, undefined, as(doctor))).status, 404);
      assert.equal((await request('PUT', `${s.fhir}/Subscription/${mine.body.id}`, { ...mine.body, status: 'requested' }, as(doctor))).status, 404);
      const searched = await request('GET', `${s.fhir}/Subscription?_count=100`, undefined, as(patient));
      const ids = searched.body.entry.map((e: any) => e.resource.id);
      assert.ok(ids.includes(mine.body.id) && !ids.includes(system.body.id), JSON.stringify(ids));
      const status = await request('GET', `${s.fhir}/Subscription/$status`, undefined, as(patient));
      assert.equal(status.status, 200);
      const reported = status.body.entry.map((e: any) => e.resource.parameter.find((p: any) => p.name === 'subscription').valueReference.reference);
      assert.ok(reported.every((r: string) => !r.endsWith(`/${system.body.id}`)) && reported.some((r: string) => r.endsWith(`/${mine.body.id}`)), JSON.stringify(reported));
      assert.equal((await request('GET', `${s.fhir}/Subscription/${system.body.id}/$status`, undefined, as(patient))).status, 404);
      const patch = [{ op: 'replace', path: '/criteria', value: 'Patient' }];
      assert.equal((await request('PATCH', `${s.fhir}/Subscription/${mine.body.id}`, patch, { ...as(patient), 'content-type': 'application/json-patch+json' })).status, 403);
      const viaTransaction = await request('POST', s.fhir, { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { ...mine.body, status: 'requested' }, request: { method: 'PUT', url: `Subscription/${mine.body.id}` } }] }, as(patient));
      assert.equal(viaTransaction.status, 403);
    });

    it('websocket binding tokens: only the owner gets one, it carries only their data, and it stops binding when the subscription changes hands', async () => {
      const sub = await subscribe(s.fhir, { criteria: 'Observation', channel: { type: 'websocket', payload: 'application/fhir+json' } }, 'active', as(patient));
      const tokenFor = (headers: Record<string, string>) => request('POST', `${s.fhir}/Subscription/${sub.id}/$get-ws-binding-token`, undefined, headers);
      assert.equal((await tokenFor(as(doctor))).status, 400, 'not the doctor\'s subscription');
      const issued = await tokenFor(as(patient));
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      const token = issued.body.parameter.find((p: any) => p.name === 'token').valueString as string;
      const socket = await connect(`${s.base.replace('http', 'ws')}/fhir/R4/ws`);
      socket.ws.send(`bind-with-token ${token}`);
      await waitFor('bound', () => socket.messages.includes(`bound ${sub.id}`));
      await otherThenOwn(() => subjects(socket.messages.filter((m) => m.startsWith('{'))));
      assert.deepEqual(subjects(socket.messages.filter((m) => m.startsWith('{'))), ['Patient/sa-a']);
      socket.ws.close();

      // an administrator takes the subscription over: the patient's token no longer binds to it
      const current = (await request('GET', `${s.fhir}/Subscription/${sub.id}`)).body;
      assert.equal((await request('PUT', `${s.fhir}/Subscription/${sub.id}`, current)).status, 200);
      const again = await connect(`${s.base.replace('http', 'ws')}/fhir/R4/ws`);
      again.ws.send(`bind-with-token ${token}`);
      await waitFor('refusal', () => again.messages.some((m) => m.startsWith(`error Subscription ${sub.id}`)));
      assert.ok(!again.messages.includes(`bound ${sub.id}`));
      again.ws.close();
    });
  });
}
