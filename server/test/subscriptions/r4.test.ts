import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DRIVERS, request, scrape, useServer } from '../support.ts';
import { observation, startReceiver, subscribe, waitFor, type Receiver } from './helpers.ts';

const ENV = {
  VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true',
  VIGIL_SUBSCRIPTION_ATTEMPTS: '3',
  VIGIL_SUBSCRIPTION_BACKOFF_MS: '50',
  VIGIL_SUBSCRIPTION_BACKOFF_CAP_MS: '100',
  VIGIL_SUBSCRIPTION_TIMEOUT_MS: '500',
  VIGIL_OUTBOX_POLL_MS: '200',
};

const SETUPS = [
  ...DRIVERS.map((driver) => ({ driver, queue: 'in-process queue', env: ENV })),
  { driver: 'postgres' as const, queue: 'BullMQ on Redis', env: { ...ENV, REDIS_URL: 'redis://127.0.0.1:6379', VIGIL_QUEUE_PREFIX: `vigil-test-${randomUUID()}` } },
];

for (const { driver, queue, env } of SETUPS) {
  describe(`R4 subscriptions (${driver}, ${queue})`, () => {
    const server = useServer(driver, env);
    let receiver: Receiver;
    before(async () => {
      receiver = await startReceiver();
    });
    after(() => receiver.close());

    it('drains the outbox: every committed write leaves it', async () => {
      await request('POST', `${server.fhir}/Patient`, { resourceType: 'Patient' });
      await waitFor('empty outbox', async () => {
        const [row] = await server.vigil.db.query<{ n: number }>('SELECT count(*)::int AS n FROM change_outbox');
        return row.n === 0;
      });
    });

    it('refuses bad subscriptions with an OperationOutcome naming the problem', async () => {
      const base = { resourceType: 'Subscription', status: 'requested', reason: 'x', channel: { type: 'rest-hook', endpoint: receiver.url } };
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ criteria: 'Nonsense?x=1' }, /Unknown resource type "Nonsense"/],
        [{ criteria: 'Observation?bogus=1' }, /bogus/],
        [{ criteria: 'Observation', channel: { type: 'rest-hook', endpoint: 'ftp://example.com/x' } }, /http or https/],
        [{ criteria: 'Observation', channel: { type: 'rest-hook', endpoint: 'not a url' } }, /not a URL/],
        [{ criteria: 'Observation', channel: { type: 'email', endpoint: 'mailto:a@b.c' } }, /not supported/],
        [{ criteria: 'Observation', channel: { type: 'rest-hook', endpoint: receiver.url, header: ['X-A: 1\r\nX-B: 2'] } }, /one line/],
        [{ criteria: 'Observation', channel: { type: 'rest-hook', endpoint: receiver.url, header: Array.from({ length: 50 }, (_, i) => `X-${i}: v`) } }, /At most/],
        [{ criteria: 'Observation', channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'text/csv' } }, /Payload/],
      ];
      for (const [patch, message] of cases) {
        const res = await request('POST', `${server.fhir}/Subscription`, { ...base, ...patch });
        assert.equal(res.status, 400, JSON.stringify(patch));
        assert.equal(res.body.resourceType, 'OperationOutcome');
        assert.match(res.body.issue[0].diagnostics, message);
      }
    });

    it('refuses the message channel (it would need FHIR messaging), naming Subscription.channel.type; the CapabilityStatement does not offer it', async () => {
      const res = await request('POST', `${server.fhir}/Subscription`, {
        resourceType: 'Subscription', status: 'requested', reason: 'x', criteria: 'Observation', channel: { type: 'message', endpoint: receiver.url },
      });
      assert.equal(res.status, 400);
      assert.match(res.body.issue[0].diagnostics, /Channel type "message" is not supported; use rest-hook or websocket/);
      assert.deepEqual(res.body.issue[0].expression, ['Subscription.channel.type']);
      const cs = (await request('GET', `${server.fhir}/metadata`)).body;
      assert.doesNotMatch(JSON.stringify(cs.rest[0].resource.find((r: { type: string }) => r.type === 'Subscription')), /message/);
    });

    it('sends channel.payload as the Content-Type, parameters included; refuses a payload that is not a MIME type', async () => {
      const payload = 'application/fhir+json; fhirVersion=4.0';
      const sub = await subscribe(server.fhir, { criteria: 'Observation?subject=Patient/p12', channel: { type: 'rest-hook', endpoint: receiver.url, payload } });
      receiver.received.length = 0;
      const written = (await request('POST', `${server.fhir}/Observation`, observation('Patient/p12'))).body;
      await waitFor('the notification', () => receiver.received.length >= 1);
      assert.equal(receiver.received[0].headers['content-type'], payload);
      assert.equal(JSON.parse(receiver.received[0].body).id, written.id);
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
      const bad = await request('POST', `${server.fhir}/Subscription`, {
        resourceType: 'Subscription', status: 'requested', reason: 'x', criteria: 'Observation', channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json; fhirVersion' },
      });
      assert.equal(bad.status, 400);
      assert.match(bad.body.issue[0].diagnostics, /not a MIME type/);
      assert.deepEqual(bad.body.issue[0].expression, ['Subscription.channel.payload']);
    });

    it('delivers matching writes with the resource, headers and in order; ignores others', async () => {
      const sub = await subscribe(server.fhir, {
        criteria: 'Observation?code=http://loinc.org|8867-4&subject=Patient/p1',
        channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json', header: ['Authorization: Bearer abc'] },
      });
      receiver.received.length = 0;
      await request('POST', `${server.fhir}/Observation`, observation('Patient/p2'));
      await request('POST', `${server.fhir}/Observation`, observation('Patient/p1', '9279-1'));
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await request('POST', `${server.fhir}/Observation`, observation('Patient/p1', '8867-4', 60 + i))).body.id);
      await waitFor('5 notifications', () => receiver.received.length >= 5);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(receiver.received.length, 5);
      assert.deepEqual(receiver.received.map((r) => JSON.parse(r.body).id), ids);
      assert.equal(receiver.received[0].headers.authorization, 'Bearer abc');
      assert.equal(receiver.received[0].headers['content-type'], 'application/fhir+json');
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
    });

    it('keeps commit order per subscription when many changes are matched at once', async () => {
      const sub = await subscribe(server.fhir, {
        criteria: 'Observation?subject=Patient/p7',
        channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
      });
      receiver.received.length = 0;
      // one commit of 10 changes, then updates of one of them, drained while the first batch is matched
      const bundle = await request('POST', server.fhir, {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array.from({ length: 10 }, (_, i) => ({ resource: observation('Patient/p7', '8867-4', 60 + i), request: { method: 'POST', url: 'Observation' } })),
      });
      assert.equal(bundle.status, 200);
      const first = bundle.body.entry[0].response.location.split('/')[1];
      for (let v = 0; v < 5; v++) {
        const res = await request('PUT', `${server.fhir}/Observation/${first}`, { ...observation('Patient/p7', '8867-4', 100 + v), id: first });
        assert.equal(res.status, 200);
      }
      await waitFor('15 notifications', () => receiver.received.length >= 15);
      const got = receiver.received.map((r) => JSON.parse(r.body));
      assert.equal(got.length, 15);
      assert.deepEqual(got.slice(10).map((o) => o.meta.versionId), ['2', '3', '4', '5', '6'], 'versions of one resource in order, after the commit before them');
      assert.equal(new Set(got.slice(0, 10).map((o) => o.id)).size, 10);
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
    });

    it('activates subscriptions committed together and matches what follows against them', async () => {
      const patients = ['p9', 'p10', 'p11'];
      const created = await request('POST', server.fhir, {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: patients.map((p) => ({
          resource: {
            resourceType: 'Subscription', status: 'requested', reason: 'test', criteria: `Observation?subject=Patient/${p}`,
            channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
          },
          request: { method: 'POST', url: 'Subscription' },
        })),
      });
      assert.equal(created.status, 200);
      const ids: string[] = created.body.entry.map((e: { response: { location: string } }) => e.response.location.split('/')[1]);
      for (const id of ids) await waitFor(`${id} active`, async () => (await request('GET', `${server.fhir}/Subscription/${id}`)).body.status === 'active');
      receiver.received.length = 0;
      const written = [];
      for (const p of patients) written.push((await request('POST', `${server.fhir}/Observation`, observation(`Patient/${p}`))).body.id);
      await waitFor('3 notifications', () => receiver.received.length >= 3);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(receiver.received.map((r) => JSON.parse(r.body).id).sort(), written.sort());
      for (const id of ids) await request('DELETE', `${server.fhir}/Subscription/${id}`);
    });

    it('a criteria with several filters notifies exactly the matching changes of a commit, in commit order', async () => {
      const sub = await subscribe(server.fhir, {
        criteria: 'Observation?subject=Patient/p8&code=http://loinc.org|8867-4',
        channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' },
      });
      receiver.received.length = 0;
      // the subject finds every change of p8; only the code search tells them apart
      const written = [
        observation('Patient/p8', '8867-4', 61),
        observation('Patient/p8', '8310-5', 62),
        observation('Patient/p8', '8867-4', 63),
        observation('Patient/other', '8867-4', 64),
        observation('Patient/p8', '8310-5', 65),
        observation('Patient/p8', '8867-4', 66),
      ];
      const bundle = await request('POST', server.fhir, {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: written.map((resource) => ({ resource, request: { method: 'POST', url: 'Observation' } })),
      });
      assert.equal(bundle.status, 200);
      await waitFor('3 notifications', () => receiver.received.length >= 3);
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(receiver.received.map((r) => JSON.parse(r.body).valueQuantity.value), [61, 63, 66]);
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
    });

    it('sends an empty body without payload; interaction filter and FHIRPath criteria select events', async () => {
      const sub = await subscribe(server.fhir, {
        criteria: 'Observation?subject=Patient/p3',
        extension: [
          { url: 'https://vigil.health/fhir/StructureDefinition/subscription-interaction', valueCode: 'update' },
          { url: 'https://vigil.health/fhir/StructureDefinition/subscription-fhirpath-criteria', valueString: '%current.valueQuantity.value > 120 and %previous.valueQuantity.value <= 120' },
        ],
        channel: { type: 'rest-hook', endpoint: receiver.url },
      });
      receiver.received.length = 0;
      const created = (await request('POST', `${server.fhir}/Observation`, observation('Patient/p3', '8867-4', 100))).body;
      const v2 = (await request('PUT', `${server.fhir}/Observation/${created.id}`, { ...observation('Patient/p3', '8867-4', 130), id: created.id })).body;
      await request('PUT', `${server.fhir}/Observation/${created.id}`, { ...observation('Patient/p3', '8867-4', 140), id: created.id });
      await waitFor('1 notification', () => receiver.received.length >= 1);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(receiver.received.length, 1, 'only the update crossing 120 notifies');
      assert.equal(receiver.received[0].body, '');
      assert.ok(v2.id);
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
    });

    it('notifies deletes when asked', async () => {
      const sub = await subscribe(server.fhir, {
        criteria: 'Observation?subject=Patient/p4',
        extension: [{ url: 'https://vigil.health/fhir/StructureDefinition/subscription-interaction', valueCode: 'delete' }],
        channel: { type: 'rest-hook', endpoint: receiver.url },
      });
      receiver.received.length = 0;
      const created = (await request('POST', `${server.fhir}/Observation`, observation('Patient/p4'))).body;
      await request('DELETE', `${server.fhir}/Observation/${created.id}`);
      await waitFor('delete notification', () => receiver.received.length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(receiver.received.length, 1);
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
    });

    it('retries a failing endpoint, then sets status error with Subscription.error; others are unaffected', async () => {
      const failing = await startReceiver(() => 500);
      const hanging = await startReceiver(() => 200);
      try {
        const bad = await subscribe(server.fhir, { criteria: 'Observation?subject=Patient/p5', channel: { type: 'rest-hook', endpoint: failing.url } });
        const good = await subscribe(server.fhir, { criteria: 'Observation?subject=Patient/p5', channel: { type: 'rest-hook', endpoint: hanging.url } });
        await request('POST', `${server.fhir}/Observation`, observation('Patient/p5'));
        await waitFor('good delivery', () => hanging.received.length >= 1);
        const errored = await waitFor('error status', async () => {
          const read = await request('GET', `${server.fhir}/Subscription/${bad.id}`);
          return read.body.status === 'error' ? read.body : undefined;
        });
        assert.equal(failing.received.length, 3);
        assert.match(errored.error, /failed after 3 attempts: .*answered 500/);
        assert.equal((await request('GET', `${server.fhir}/Subscription/${good.id}`)).body.status, 'active');
        await request('PUT', `${server.fhir}/Subscription/${good.id}`, { ...good, status: 'off' });
      } finally {
        await failing.close();
        await hanging.close();
      }
    });

    it('counts on /metrics: notifications sent and failed attempts, commit-to-sent latency, dead deliveries, backlogs', async () => {
      const value = await scrape(server.base);
      const sent = value('vigil_subscription_notifications_total{channel="rest-hook",kind="event",outcome="sent"}');
      assert.ok(sent >= 6, `sent ${sent}`);
      // the failing endpoint's three attempts, and its delivery given up after them
      assert.equal(value('vigil_subscription_notifications_total{channel="rest-hook",kind="event",outcome="failed"}'), 3);
      assert.equal(value('vigil_subscription_deliveries_dead_total{kind="event"}'), 1);
      // one latency per event sent, each from its commit
      assert.equal(value('vigil_subscription_notification_latency_seconds_count{channel="rest-hook"}'), sent);
      assert.ok(value('vigil_subscription_deliveries_pending') >= 0);
      assert.ok(value('vigil_outbox_changes') >= 0);
    });

    it('keeps commit order through retries: events committed while a notification is retried wait behind it', async () => {
      const flaky = await startReceiver((n) => (n <= 2 ? 503 : 200));
      try {
        const sub = await subscribe(server.fhir, {
          criteria: 'Observation?subject=Patient/p8',
          channel: { type: 'rest-hook', endpoint: flaky.url, payload: 'application/fhir+json' },
        });
        const ids = [(await request('POST', `${server.fhir}/Observation`, observation('Patient/p8', '8867-4', 60))).body.id];
        await waitFor('the first attempt', () => flaky.received.length >= 1);
        for (let i = 1; i < 4; i++) ids.push((await request('POST', `${server.fhir}/Observation`, observation('Patient/p8', '8867-4', 60 + i))).body.id);
        await waitFor('4 notifications accepted', () => flaky.received.length >= 6);
        await new Promise((r) => setTimeout(r, 300));
        // the first two attempts (both of the first event) were refused
        assert.deepEqual(flaky.received.slice(0, 2).map((r) => JSON.parse(r.body).id), [ids[0], ids[0]]);
        assert.deepEqual(flaky.received.slice(2).map((r) => JSON.parse(r.body).id), ids);
        await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
      } finally {
        await flaky.close();
      }
    });

    it('off stops deliveries; end is honoured', async () => {
      const sub = await subscribe(server.fhir, { criteria: 'Observation?subject=Patient/p6', channel: { type: 'rest-hook', endpoint: receiver.url } });
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...sub, status: 'off' });
      const ending = await subscribe(server.fhir, {
        criteria: 'Observation?subject=Patient/p6',
        end: new Date(Date.now() + 1500).toISOString(),
        channel: { type: 'rest-hook', endpoint: receiver.url },
      });
      await waitFor('end → off', async () => (await request('GET', `${server.fhir}/Subscription/${ending.id}`)).body.status === 'off', 8000);
      receiver.received.length = 0;
      await request('POST', `${server.fhir}/Observation`, observation('Patient/p6'));
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(receiver.received.length, 0);
    });
  });
}
