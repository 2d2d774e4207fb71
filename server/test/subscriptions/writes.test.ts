import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Subscription } from '@medplum/fhirtypes';
import { DRIVERS, request, useServer, type FhirResponse } from '../support.ts';
import { observation, startReceiver, subscribe, topicSubscription, waitFor, type Receiver } from './helpers.ts';

const ENV = {
  VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true',
  VIGIL_OUTBOX_POLL_MS: '200',
  VIGIL_SUBSCRIPTION_BACKOFF_MS: '50',
  VIGIL_SUBSCRIPTION_HANDSHAKE_ATTEMPTS: '2',
};
const JSON_PATCH = { 'content-type': 'application/json-patch+json' };
const BAD_CRITERIA = 'Nonsense?x=1';

const classic = (endpoint: string, patient: string) => ({
  resourceType: 'Subscription', status: 'requested', reason: 'test', criteria: `Observation?subject=Patient/${patient}`,
  channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json' },
});

const topicBased = (endpoint: string, patient: string, status: string) => ({
  resourceType: 'Subscription', status, reason: 'test', ...topicSubscription(endpoint, patient, 'application/fhir+json; fhirVersion=4.0'),
});

/** The notification types a receiver got, in order (handshake, event-notification…). */
const types = (receiver: Receiver): string[] =>
  receiver.received.map((r) => JSON.parse(r.body).entry[0].resource.parameter.find((p: { name: string }) => p.name === 'type').valueCode);

/** The 400 of the criteria check, the same on every path (`expression` as the path names it). */
function refusedCriteria(res: FhirResponse, expression = 'Subscription.criteria'): void {
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.resourceType, 'OperationOutcome');
  assert.match(res.body.issue[0].diagnostics, /Unknown resource type "Nonsense" in criteria/);
  assert.deepEqual(res.body.issue[0].expression, [expression]);
}

const base64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64');

for (const driver of DRIVERS) {
  describe(`Subscription writes (${driver})`, () => {
    const server = useServer(driver, ENV);
    let receiver: Receiver;
    before(async () => {
      receiver = await startReceiver();
    });
    after(() => receiver.close());

    const read = async (id: string): Promise<Subscription> => (await request('GET', `${server.fhir}/Subscription/${id}`)).body;
    const count = async (): Promise<number> => (await server.vigil.db.query<{ n: number }>('SELECT count(*)::int AS n FROM "Subscription"'))[0].n;

    it('refuses an invalid subscription on PATCH, conditional PUT and PATCH, and batch and transaction entries; nothing is written', async () => {
      const sub = await subscribe(server.fhir, classic(receiver.url, 'w1'));
      const subscriptions = await count();
      const invalid = { ...sub, criteria: BAD_CRITERIA };
      const replaceCriteria = [{ op: 'replace', path: '/criteria', value: BAD_CRITERIA }];

      refusedCriteria(await request('PATCH', `${server.fhir}/Subscription/${sub.id}`, replaceCriteria, JSON_PATCH));
      refusedCriteria(await request('PATCH', `${server.fhir}/Subscription?_id=${sub.id}`, {
        resourceType: 'Parameters',
        parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'Subscription.criteria' }, { name: 'value', valueString: BAD_CRITERIA }] }],
      }));
      refusedCriteria(await request('PUT', `${server.fhir}/Subscription?_id=${sub.id}`, invalid));
      refusedCriteria(await request('PUT', `${server.fhir}/Subscription?_id=nobody`, { ...invalid, id: undefined }));

      // a transaction is refused whole: the Patient beside the subscription is not created either
      const created = await request('POST', server.fhir, {
        resourceType: 'Bundle', type: 'transaction',
        entry: [
          { resource: { resourceType: 'Patient', identifier: [{ system: 'urn:test:writes', value: 'w1' }] }, request: { method: 'POST', url: 'Patient' } },
          { resource: { ...classic(receiver.url, 'w1'), criteria: BAD_CRITERIA }, request: { method: 'POST', url: 'Subscription' } },
        ],
      });
      refusedCriteria(created, 'Bundle.entry[1].resource.criteria');
      assert.equal((await request('GET', `${server.fhir}/Patient?identifier=urn:test:writes|w1&_summary=count`)).body.total, 0);
      const entries = [
        { resource: invalid, request: { method: 'PUT', url: `Subscription/${sub.id}` } },
        { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: base64(replaceCriteria) }, request: { method: 'PATCH', url: `Subscription/${sub.id}` } },
      ];
      for (const entry of entries) {
        refusedCriteria(await request('POST', server.fhir, { resourceType: 'Bundle', type: 'transaction', entry: [entry] }), 'Bundle.entry[0].resource.criteria');
      }
      const batch = await request('POST', server.fhir, { resourceType: 'Bundle', type: 'batch', entry: entries });
      assert.equal(batch.status, 200);
      for (const { response } of batch.body.entry) {
        assert.equal(response.status, '400');
        assert.deepEqual(response.outcome.issue[0].expression, ['Subscription.criteria']);
      }

      assert.equal(await count(), subscriptions);
      const now = await read(sub.id);
      assert.equal(now.meta?.versionId, sub.meta.versionId);
      assert.equal(now.criteria, sub.criteria);
      // still active and still matched, not dropped
      assert.equal(now.status, 'active');
      receiver.received.length = 0;
      const written = (await request('POST', `${server.fhir}/Observation`, observation('Patient/w1'))).body;
      await waitFor('the notification', () => receiver.received.length >= 1);
      assert.equal(JSON.parse(receiver.received[0].body).id, written.id);
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...now, status: 'off' });
    });

    it('a valid PATCH goes through the same hook: the owner recorded, ETag and If-Match as for any patch', async () => {
      const sub = await subscribe(server.fhir, classic(receiver.url, 'w2'));
      const patched = await request('PATCH', `${server.fhir}/Subscription/${sub.id}`, [{ op: 'replace', path: '/status', value: 'off' }], { ...JSON_PATCH, 'if-match': `W/"${sub.meta.versionId}"` });
      assert.equal(patched.status, 200);
      assert.equal(patched.body.status, 'off');
      assert.equal(patched.headers.get('etag'), `W/"${Number(sub.meta.versionId) + 1}"`);
      assert.ok(patched.body.extension.some((e: { url: string }) => e.url.endsWith('/subscription-owner')));
      const stale = await request('PATCH', `${server.fhir}/Subscription/${sub.id}`, [{ op: 'replace', path: '/status', value: 'requested' }], { ...JSON_PATCH, 'if-match': `W/"${sub.meta.versionId}"` });
      assert.equal(stale.status, 412);
    });

    it('takes a client\'s active as requested on create: a topic-based rest-hook gets its handshake before it is active, or goes to error', async () => {
      const hook = await startReceiver();
      const dead = await startReceiver(() => 503);
      try {
        const created = await request('POST', `${server.fhir}/Subscription`, topicBased(hook.url, 'Patient/w3', 'active'));
        assert.equal(created.status, 201);
        assert.equal(created.body.status, 'requested');
        await waitFor('active', async () => (await read(created.body.id)).status === 'active');
        assert.deepEqual(types(hook), ['handshake']);
        // the Content-Type is channel.payload as given, parameters included
        assert.equal(hook.received[0].headers['content-type'], 'application/fhir+json; fhirVersion=4.0');

        const refused = await request('POST', `${server.fhir}/Subscription`, topicBased(dead.url, 'Patient/w3', 'active'));
        assert.equal(refused.body.status, 'requested');
        const errored = await waitFor('error', async () => {
          const sub = await read(refused.body.id);
          return sub.status === 'error' ? sub : undefined;
        });
        assert.match(errored.error ?? '', /^Handshake failed after 2 attempts/);
      } finally {
        await hook.close();
        await dead.close();
      }
    });

    it('takes active as requested on an update from off, by PUT and by PATCH; an active subscription kept active stays as it is', async () => {
      const hook = await startReceiver();
      try {
        const sub = await subscribe(server.fhir, topicBased(hook.url, 'Patient/w4', 'requested'));
        assert.deepEqual(types(hook), ['handshake']);
        // kept active (PUT as read): nothing to activate again
        const kept = await request('PUT', `${server.fhir}/Subscription/${sub.id}`, sub);
        assert.equal(kept.body.status, 'active');

        const off = (await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...kept.body, status: 'off' })).body;
        const put = await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...off, status: 'active' });
        assert.equal(put.body.status, 'requested');
        await waitFor('active again', async () => (await read(sub.id)).status === 'active');
        assert.deepEqual(types(hook), ['handshake', 'handshake']);

        await request('PATCH', `${server.fhir}/Subscription/${sub.id}`, [{ op: 'replace', path: '/status', value: 'off' }], JSON_PATCH);
        const patched = await request('PATCH', `${server.fhir}/Subscription/${sub.id}`, [{ op: 'replace', path: '/status', value: 'active' }], JSON_PATCH);
        assert.equal(patched.body.status, 'requested');
        await waitFor('active once more', async () => (await read(sub.id)).status === 'active');
        assert.deepEqual(types(hook), ['handshake', 'handshake', 'handshake']);

        hook.received.length = 0;
        await request('POST', `${server.fhir}/Observation`, observation('Patient/w4'));
        await waitFor('the event', () => hook.received.length >= 1);
        assert.deepEqual(types(hook), ['event-notification']);
        await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...(await read(sub.id)), status: 'off' });
      } finally {
        await hook.close();
      }
    });

    it('sets error on an active subscription stored around validation (a message channel, now refused), saying why', async () => {
      const { resource } = await server.vigil.repo.create({
        resourceType: 'Subscription', status: 'active', reason: 'test', criteria: 'Observation?subject=Patient/w5',
        channel: { type: 'message', endpoint: receiver.url },
      } as Subscription);
      const errored = await waitFor('error', async () => {
        const sub = await read(resource.id as string);
        return sub.status === 'error' ? sub : undefined;
      });
      assert.match(errored.error ?? '', /Channel type "message" is not supported/);
    });
  });
}
