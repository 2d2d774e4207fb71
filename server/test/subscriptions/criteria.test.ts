import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';
import { backportSubscription, notifiedFocus, observation, startReceiver, subscribe, waitFor, type Receiver } from './helpers.ts';

const ENV = {
  VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true',
  VIGIL_SUBSCRIPTION_TIMEOUT_MS: '500',
  VIGIL_OUTBOX_POLL_MS: '200',
};
const NEW_ALERT = 'https://vigil.health/fhir/SubscriptionTopic/new-alert';
const ADMITTED = 'https://vigil.health/fhir/SubscriptionTopic/patient-admitted';
const ALERT_CATEGORY = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'alert' }] };

/** What a receiver was sent, as `Type/id` of each resource (R4 full-resource payloads). */
const notified = (receiver: Receiver): string[] => receiver.received.map((r) => {
  const resource = JSON.parse(r.body);
  return `${resource.resourceType}/${resource.id}`;
});

/** Waits until the receiver has `n` notifications, then a little longer, to see that no more come. */
async function settle(receiver: Receiver, n: number, count = (r: Receiver) => r.received.length): Promise<void> {
  await waitFor(`${n} notifications`, () => count(receiver) >= n);
  await sleep(500);
}

for (const driver of DRIVERS) {
  describe(`subscription criteria and topics (${driver})`, () => {
    const server = useServer(driver, ENV);
    const receivers: Receiver[] = [];
    const receiver = async () => {
      const r = await startReceiver();
      receivers.push(r);
      return r;
    };
    after(() => Promise.all(receivers.map((r) => r.close())));
    const post = async (resource: Record<string, unknown>): Promise<string> => {
      const res = await request('POST', `${server.fhir}/${resource.resourceType}`, resource);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return `${res.body.resourceType}/${res.body.id}`;
    };
    const r4 = (criteria: string, endpoint: string) => subscribe(server.fhir, { criteria, channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json' } });

    it('R4 criteria on quantity, date and a chained parameter notify exactly the matching writes', async () => {
      await request('PUT', `${server.fhir}/Patient/cq-a`, { resourceType: 'Patient', id: 'cq-a', name: [{ family: 'Chained' }] });
      await request('PUT', `${server.fhir}/Patient/cq-b`, { resourceType: 'Patient', id: 'cq-b', name: [{ family: 'Other' }] });
      const [high, recent, chained] = [await receiver(), await receiver(), await receiver()];
      await r4('Observation?subject=Patient/cq-a&value-quantity=gt100', high.url);
      await r4('Observation?subject=Patient/cq-a&date=ge2024-06-01', recent.url);
      await r4('Observation?subject:Patient.family=chained', chained.url);
      const low = await post({ ...observation('Patient/cq-a', '8867-4', 90), effectiveDateTime: '2024-05-01T10:00:00Z' });
      const highAndRecent = await post({ ...observation('Patient/cq-a', '8867-4', 120), effectiveDateTime: '2024-07-01T10:00:00Z' });
      await post({ ...observation('Patient/cq-b', '8867-4', 130), effectiveDateTime: '2024-07-01T10:00:00Z' });
      await settle(chained, 2);
      await settle(high, 1);
      await settle(recent, 1);
      assert.deepEqual(notified(high), [highAndRecent]);
      assert.deepEqual(notified(recent), [highAndRecent]);
      assert.deepEqual(notified(chained), [low, highAndRecent]);
    });

    it('new-alert: an active Flag and an alert Communication about the patient notify; an inactive Flag and a plain message do not', async () => {
      const alerts = await receiver();
      await subscribe(server.fhir, backportSubscription(NEW_ALERT, alerts.url, ['Flag?patient=Patient/na-1', 'Communication?patient=Patient/na-1']));
      const subject = { reference: 'Patient/na-1' };
      const flag = await post({ resourceType: 'Flag', status: 'active', code: { text: 'SpO2 low' }, subject });
      await post({ resourceType: 'Flag', status: 'inactive', code: { text: 'old' }, subject });
      await post({ resourceType: 'Flag', status: 'active', code: { text: 'another patient' }, subject: { reference: 'Patient/na-2' } });
      const alert = await post({ resourceType: 'Communication', status: 'in-progress', category: [ALERT_CATEGORY], subject, payload: [{ contentString: 'review' }] });
      await post({ resourceType: 'Communication', status: 'in-progress', subject, payload: [{ contentString: 'hello' }] });
      await settle(alerts, 2, (r) => notifiedFocus(r).length);
      assert.deepEqual(notifiedFocus(alerts), [flag, alert]);
    });

    it('patient-admitted: an Encounter notifies when it becomes in-progress, not again while it stays so', async () => {
      const admissions = await receiver();
      await subscribe(server.fhir, backportSubscription(ADMITTED, admissions.url, ['Encounter?patient=Patient/pa-1']));
      const encounter = { resourceType: 'Encounter', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HH' }, subject: { reference: 'Patient/pa-1' } };
      const planned = (await request('POST', `${server.fhir}/Encounter`, { ...encounter, status: 'planned' })).body;
      const admitted = (await request('PUT', `${server.fhir}/Encounter/${planned.id}`, { ...planned, status: 'in-progress' })).body;
      await request('PUT', `${server.fhir}/Encounter/${planned.id}`, { ...admitted, period: { start: '2025-01-01T10:00:00Z' } });
      const direct = await post({ ...encounter, status: 'in-progress' });
      await settle(admissions, 2, (r) => notifiedFocus(r).length);
      assert.deepEqual(notifiedFocus(admissions), [`Encounter/${planned.id}`, direct]);
    });

    it('an endpoint that never answers does not hold back another subscription', async () => {
      const held = new Set<ServerResponse>();
      const hanging = createServer((_req, res) => void held.add(res));
      await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
      const prompt = await receiver();
      try {
        await r4('Observation?subject=Patient/hang-1', `http://127.0.0.1:${(hanging.address() as { port: number }).port}/hook`);
        await r4('Observation?subject=Patient/hang-1', prompt.url);
        const started = Date.now();
        const written: string[] = [];
        for (let i = 0; i < 5; i++) written.push(await post(observation('Patient/hang-1', '8867-4', 70 + i)));
        await waitFor('every notification at the answering endpoint', () => prompt.received.length >= 5, 15_000);
        assert.deepEqual(notified(prompt), written);
        // a hanging endpoint costs its shard at most one delivery timeout before it is set aside
        assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
        assert.ok(held.size >= 1, 'the hanging endpoint was tried');
      } finally {
        for (const res of held) res.destroy();
        hanging.closeAllConnections();
        await new Promise((resolve) => hanging.close(resolve));
      }
    });
  });
}

describe('subscription endpoints without VIGIL_ALLOW_PRIVATE_ENDPOINTS', () => {
  const server = useServer('pglite');
  it('refuses loopback, private and link-local endpoints at create time, naming channel.endpoint', async () => {
    for (const endpoint of ['http://127.0.0.1:9/hook', 'http://localhost/hook', 'http://10.1.2.3/hook', 'http://169.254.169.254/latest', 'http://[::1]/hook', 'http://192.168.0.5/hook']) {
      const res = await request('POST', `${server.fhir}/Subscription`, {
        resourceType: 'Subscription', status: 'requested', reason: 'x', criteria: 'Observation', channel: { type: 'rest-hook', endpoint },
      });
      assert.equal(res.status, 400, endpoint);
      assert.match(res.body.issue[0].diagnostics, /loopback or private/, endpoint);
      assert.deepEqual(res.body.issue[0].expression, ['Subscription.channel.endpoint'], endpoint);
    }
    const [row] = await server.vigil.db.query<{ n: number }>('SELECT count(*)::int AS n FROM "Subscription"');
    assert.equal(row.n, 0);
  });
});
