import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { startVigil, type Vigil } from '../../src/main.ts';
import { DRIVERS, request, useServer } from '../support.ts';
import { BACKPORT, connect, observation, startReceiver, subscribe, VITAL, waitFor, type Receiver } from './helpers.ts';

const ENV = { VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true', VIGIL_OUTBOX_POLL_MS: '200' };

function topicSubscription(endpoint: string, content: string, filter: string, extra: Record<string, unknown> = {}) {
  return {
    meta: { profile: [`${BACKPORT}backport-subscription`] },
    criteria: VITAL,
    _criteria: { extension: [{ url: `${BACKPORT}backport-filter-criteria`, valueString: filter }] },
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: content }] },
      ...extra,
    },
  };
}

for (const driver of DRIVERS) {
  describe(`R5 backport topic subscriptions (${driver})`, () => {
    const server = useServer(driver, ENV);
    let receiver: Receiver;
    before(async () => {
      receiver = await startReceiver();
    });
    after(() => receiver.close());

    it('advertises topics, the backport profile and the websocket URL; topics are searchable Basic resources', async () => {
      const cs = (await request('GET', `${server.fhir}/metadata`)).body;
      const sub = cs.rest[0].resource.find((r: any) => r.type === 'Subscription');
      assert.ok(sub.extension.some((e: any) => e.url === `${BACKPORT}capabilitystatement-subscriptiontopic-canonical` && e.valueCanonical === VITAL));
      assert.deepEqual(sub.supportedProfile, [`${BACKPORT}backport-subscription`]);
      assert.match(cs.rest[0].extension.find((e: any) => e.url.endsWith('capabilitystatement-websocket')).valueUri, /^ws:\/\/.*\/fhir\/R4\/ws$/);
      const topics = await request('GET', `${server.fhir}/Basic?code=http://hl7.org/fhir/fhir-types|SubscriptionTopic`);
      assert.deepEqual(topics.body.entry.map((e: any) => e.resource.id).sort(), ['topic-new-alert', 'topic-new-vital-sign', 'topic-patient-admitted']);
    });

    it('refuses unknown topics, filters the topic does not offer, and missing payload content', async () => {
      const bad = [
        [{ ...topicSubscription(receiver.url, 'id-only', 'Observation?patient=Patient/x'), criteria: 'https://vigil.health/fhir/SubscriptionTopic/nope' }, /Unknown SubscriptionTopic/],
        [topicSubscription(receiver.url, 'id-only', 'Observation?status=final'), /does not support the filter "status"/],
        [topicSubscription(receiver.url, 'id-only', 'Patient?name=x'), /cannot filter Patient/],
        [topicSubscription(receiver.url, 'everything', 'Observation?patient=Patient/x'), /backport-payload-content/],
      ] as const;
      for (const [body, message] of bad) {
        const res = await request('POST', `${server.fhir}/Subscription`, { resourceType: 'Subscription', status: 'requested', reason: 'x', ...body });
        assert.equal(res.status, 400);
        assert.match(res.body.issue[0].diagnostics, message);
      }
    });

    it('handshakes on activation, then sends history Bundles with the status first (full-resource and id-only)', async () => {
      receiver.received.length = 0;
      const full = await subscribe(server.fhir, topicSubscription(receiver.url, 'full-resource', 'Observation?patient=Patient/t1'));
      const handshake = JSON.parse(receiver.received[0].body);
      assert.equal(handshake.type, 'history');
      const hsStatus = handshake.entry[0].resource;
      assert.equal(hsStatus.resourceType, 'Parameters');
      assert.equal(hsStatus.parameter.find((p: any) => p.name === 'type').valueCode, 'handshake');
      assert.equal(hsStatus.parameter.find((p: any) => p.name === 'events-since-subscription-start').valueString, '0');
      const idOnly = await subscribe(server.fhir, topicSubscription(receiver.url, 'id-only', 'Observation?patient=Patient/t1'));
      receiver.received.length = 0;
      const obs = (await request('POST', `${server.fhir}/Observation`, observation('Patient/t1'))).body;
      await request('POST', `${server.fhir}/Observation`, { ...observation('Patient/t1'), category: [] });
      await request('POST', `${server.fhir}/Observation`, observation('Patient/other'));
      await waitFor('2 notifications', () => receiver.received.length >= 2);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(receiver.received.length, 2, 'one per subscription, only the matching vital sign');
      const bundles = receiver.received.map((r) => JSON.parse(r.body));
      const fullBundle = bundles.find((b) => b.entry[0].resource.parameter[0].valueReference.reference.endsWith(full.id));
      const idBundle = bundles.find((b) => b.entry[0].resource.parameter[0].valueReference.reference.endsWith(idOnly.id));
      assert.equal(receiver.received[0].headers['content-type'], 'application/fhir+json');
      for (const bundle of [fullBundle, idBundle]) {
        assert.equal(bundle.type, 'history');
        for (const entry of bundle.entry) assert.ok(entry.request && entry.response, 'request and response on every entry');
        const status = bundle.entry[0].resource;
        const param = (name: string) => status.parameter.find((p: any) => p.name === name);
        assert.equal(param('type').valueCode, 'event-notification');
        assert.equal(param('topic').valueCanonical, VITAL);
        assert.equal(param('events-since-subscription-start').valueString, '1');
        const event = param('notification-event').part;
        assert.equal(event.find((p: any) => p.name === 'event-number').valueString, '1');
        assert.equal(event.find((p: any) => p.name === 'focus').valueReference.reference, `${server.fhir}/Observation/${obs.id}`);
        assert.equal(bundle.entry[1].fullUrl, `${server.fhir}/Observation/${obs.id}`);
        assert.deepEqual(bundle.entry[1].request, { method: 'POST', url: 'Observation' });
      }
      assert.equal(fullBundle.entry[1].resource.id, obs.id);
      assert.equal(idBundle.entry[1].resource, undefined);

      const status = await request('GET', `${server.fhir}/Subscription/${full.id}/$status`);
      assert.equal(status.body.type, 'searchset');
      assert.equal(status.body.entry[0].resource.parameter.find((p: any) => p.name === 'events-since-subscription-start').valueString, '1');
      assert.equal(status.body.entry[0].resource.parameter.find((p: any) => p.name === 'type').valueCode, 'query-status');
      const events = await request('GET', `${server.fhir}/Subscription/${full.id}/$events?eventsSinceNumber=1&content=full-resource`);
      assert.equal(events.body.type, 'history');
      assert.equal(events.body.entry[1].resource.id, obs.id);
      for (const id of [full.id, idOnly.id]) {
        const current = (await request('GET', `${server.fhir}/Subscription/${id}`)).body;
        await request('PUT', `${server.fhir}/Subscription/${id}`, { ...current, status: 'off' });
      }
    });

    it('empty content carries no focus, no topic and no resource entries; heartbeats do not count as events', async () => {
      receiver.received.length = 0;
      const sub = await subscribe(server.fhir, topicSubscription(receiver.url, 'empty', 'Observation?patient=Patient/t2', {
        extension: [{ url: `${BACKPORT}backport-heartbeat-period`, valueUnsignedInt: 1 }],
      }));
      await request('POST', `${server.fhir}/Observation`, observation('Patient/t2'));
      const types = () => receiver.received.map((r) => JSON.parse(r.body).entry[0].resource.parameter.find((p: any) => p.name === 'type').valueCode);
      await waitFor('event and heartbeat', () => types().includes('event-notification') && types().includes('heartbeat'), 8000);
      const event = JSON.parse(receiver.received.find((_, i) => types()[i] === 'event-notification')!.body);
      assert.equal(event.entry.length, 1);
      const params = event.entry[0].resource.parameter;
      assert.equal(params.find((p: any) => p.name === 'topic'), undefined);
      assert.equal(params.find((p: any) => p.name === 'notification-event').part.find((p: any) => p.name === 'focus'), undefined);
      const heartbeat = JSON.parse(receiver.received.find((_, i) => types()[i] === 'heartbeat')!.body);
      assert.equal(heartbeat.entry[0].resource.parameter.find((p: any) => p.name === 'events-since-subscription-start').valueString, '1');
      await request('PUT', `${server.fhir}/Subscription/${sub.id}`, { ...(await request('GET', `${server.fhir}/Subscription/${sub.id}`)).body, status: 'off' });
    });

    it('events committed together arrive in one notification, numbered in commit order; backport-max-count splits it', async () => {
      const all = await subscribe(server.fhir, topicSubscription(receiver.url, 'full-resource', 'Observation?patient=Patient/t4'));
      const two = await subscribe(server.fhir, topicSubscription(receiver.url, 'id-only', 'Observation?patient=Patient/t4', {
        extension: [{ url: `${BACKPORT}backport-max-count`, valuePositiveInt: 2 }],
      }));
      receiver.received.length = 0;
      const written = await request('POST', server.fhir, {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [61, 62, 63].map((value) => ({ resource: observation('Patient/t4', '8867-4', value), request: { method: 'POST', url: 'Observation' } })),
      });
      assert.equal(written.status, 200);
      const ids = written.body.entry.map((e: any) => e.response.location.split('/')[1]);
      const of = (sub: string) => receiver.received.map((r) => JSON.parse(r.body)).filter((b) => b.entry[0].resource.parameter[0].valueReference.reference.endsWith(sub));
      await waitFor('3 notifications', () => receiver.received.length >= 3);
      await new Promise((r) => setTimeout(r, 300));
      const summary = (bundle: any) => {
        const params = bundle.entry[0].resource.parameter;
        return {
          since: params.find((p: any) => p.name === 'events-since-subscription-start').valueString,
          numbers: params.filter((p: any) => p.name === 'notification-event').map((p: any) => p.part.find((q: any) => q.name === 'event-number').valueString),
          focus: bundle.entry.slice(1).map((e: any) => e.fullUrl.split('/').pop()),
          resources: bundle.entry.slice(1).map((e: any) => e.resource?.valueQuantity.value),
        };
      };
      assert.deepEqual(of(all.id).map(summary), [{ since: '3', numbers: ['1', '2', '3'], focus: ids, resources: [61, 62, 63] }]);
      assert.deepEqual(of(two.id).map(summary), [
        { since: '2', numbers: ['1', '2'], focus: ids.slice(0, 2), resources: [undefined, undefined] },
        { since: '3', numbers: ['3'], focus: ids.slice(2), resources: [undefined] },
      ]);
      const events = await request('GET', `${server.fhir}/Subscription/${all.id}/$events?eventsSinceNumber=1`);
      assert.deepEqual(events.body.entry.slice(1).map((e: any) => e.fullUrl.split('/').pop()), ids);
      for (const id of [all.id, two.id]) {
        await request('PUT', `${server.fhir}/Subscription/${id}`, { ...(await request('GET', `${server.fhir}/Subscription/${id}`)).body, status: 'off' });
      }
    });

    it('a failed handshake sets status error', async () => {
      const dead = await startReceiver(() => 503);
      try {
        const sub = await subscribe(server.fhir, topicSubscription(dead.url, 'id-only', 'Observation?patient=Patient/t3'), 'error');
        assert.match(sub.error, /Handshake failed/);
      } finally {
        await dead.close();
      }
    });

    it('websocket: R4 bind/ping, and bind-with-token carrying the notification', async () => {
      const ws = await subscribe(server.fhir, {
        meta: { profile: [`${BACKPORT}backport-subscription`] },
        criteria: VITAL,
        _criteria: { extension: [{ url: `${BACKPORT}backport-filter-criteria`, valueString: 'Observation?patient=Patient/w1' }] },
        channel: { type: 'websocket', payload: 'application/fhir+json', _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'id-only' }] } },
      });
      const wsUrl = `${server.base.replace('http', 'ws')}/fhir/R4/ws`;
      const plain = await connect(wsUrl);
      plain.ws.send(`bind ${ws.id}`);
      await waitFor('bound', () => plain.messages.includes(`bound ${ws.id}`));
      const token = await request('POST', `${server.fhir}/Subscription/${ws.id}/$get-ws-binding-token`);
      assert.equal(token.status, 200);
      const param = (name: string) => token.body.parameter.find((p: any) => p.name === name);
      assert.equal(param('websocket-url').valueUrl, wsUrl);
      const rich = await connect(param('websocket-url').valueUrl);
      rich.ws.send(`bind-with-token ${param('token').valueString}`);
      await waitFor('handshake', () => rich.messages.some((m) => m.startsWith('{') && JSON.parse(m).entry[0].resource.parameter.some((p: any) => p.valueCode === 'handshake')));
      const obs = (await request('POST', `${server.fhir}/Observation`, observation('Patient/w1'))).body;
      await waitFor('ping', () => plain.messages.includes(`ping ${ws.id}`));
      const note = await waitFor('notification', () => rich.messages.map((m) => (m.startsWith('{') ? JSON.parse(m) : undefined)).find((b) => b?.entry[0].resource.parameter.some((p: any) => p.valueCode === 'event-notification')));
      assert.equal(note.entry[1].fullUrl, `${server.fhir}/Observation/${obs.id}`);
      const bad = await connect(wsUrl);
      bad.ws.send('bind-with-token nope');
      await waitFor('refusal', () => bad.messages.includes('error invalid or expired token'));
      for (const c of [plain, rich, bad]) c.ws.close();
    });
  });
}

describe('scale-out: websocket on an api replica, delivery on a worker replica, BullMQ on Redis (postgres)', () => {
  const prefix = `vigil-test-${randomUUID()}`;
  // the worker polls the outbox every 10 min: the api replica's commits must wake it
  const env = { ...ENV, VIGIL_OUTBOX_POLL_MS: '600000', REDIS_URL: 'redis://127.0.0.1:6379', VIGIL_QUEUE_PREFIX: prefix, VIGIL_ROLE: 'api' };
  let worker: Vigil | undefined;
  let receiver: Receiver;
  // registered before useServer's own teardown, so the worker lets go of the database before it is dropped
  after(async () => {
    await worker?.stop();
    await receiver?.close();
  });
  const api = useServer('postgres', env);
  before(async () => {
    receiver = await startReceiver();
    worker = await startVigil({ ...loadConfig({ ...env, PORT: '0', LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', VIGIL_ROLE: 'worker', MQTT_PORT: '0', DATABASE_URL: api.vigil.config.databaseUrl as string }) });
  });
  it('a write on the api replica wakes the worker, which matches it; it reaches the api replica\'s websocket and a rest-hook', async () => {
    const hook = await subscribe(api.fhir, { criteria: 'Observation?subject=Patient/s1', channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' } });
    const ws = await subscribe(api.fhir, { criteria: 'Observation?subject=Patient/s1', channel: { type: 'websocket' } });
    const client = await connect(`${api.base.replace('http', 'ws')}/fhir/R4/ws`);
    client.ws.send(`bind ${ws.id}`);
    await waitFor('bound', () => client.messages.includes(`bound ${ws.id}`));
    const obs = (await request('POST', `${api.fhir}/Observation`, observation('Patient/s1'))).body;
    await waitFor('ping across replicas', () => client.messages.includes(`ping ${ws.id}`));
    await waitFor('rest-hook', () => receiver.received.length >= 1);
    assert.equal(JSON.parse(receiver.received[0].body).id, obs.id);
    assert.ok(hook.id);
    client.ws.close();
  });
});
