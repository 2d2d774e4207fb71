import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';
import { observation, startReceiver, subscribe, topicSubscription, waitFor, type Receiver } from './helpers.ts';

const ENV = {
  VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true',
  VIGIL_OUTBOX_POLL_MS: '200',
  VIGIL_SUBSCRIPTION_BACKOFF_MS: '50',
  VIGIL_SUBSCRIPTION_HANDSHAKE_ATTEMPTS: '3',
};

/** What a receiver learns from one notification Bundle: its events, each with its focus entry in the same order. */
function summary(body: string) {
  const bundle = JSON.parse(body);
  const params = bundle.entry[0].resource.parameter as any[];
  const param = (name: string) => params.find((p) => p.name === name);
  const events = params.filter((p) => p.name === 'notification-event').map((p, i) => ({
    number: Number((p.part as any[]).find((part) => part.name === 'event-number').valueString),
    focus: bundle.entry[1 + i]?.fullUrl as string | undefined,
  }));
  return { type: param('type').valueCode as string, since: Number(param('events-since-subscription-start').valueString), events };
}

const eventsOf = (received: Receiver['received']) => received.flatMap((r) => summary(r.body).events);

for (const driver of DRIVERS) {
  describe(`handshake retries and $resend (${driver})`, () => {
    const server = useServer(driver, ENV);
    let receiver: Receiver;
    before(async () => {
      receiver = await startReceiver();
    });
    after(() => receiver.close());

    it('retries a failing handshake with backoff and activates once the endpoint accepts it', async () => {
      const flaky = await startReceiver((n) => (n <= 2 ? 503 : 200));
      try {
        const sub = await subscribe(server.fhir, topicSubscription(flaky.url, 'Patient/h1'));
        assert.equal(sub.error, undefined);
        assert.deepEqual(flaky.received.map((r) => summary(r.body).type), ['handshake', 'handshake', 'handshake']);
        assert.ok(flaky.received[2].at - flaky.received[0].at >= 50, 'the retries waited');
      } finally {
        await flaky.close();
      }
    });

    it('sets error after the last handshake attempt, saying how many were made', async () => {
      const dead = await startReceiver(() => 503);
      try {
        const sub = await subscribe(server.fhir, topicSubscription(dead.url, 'Patient/h2'), 'error');
        assert.match(sub.error, /^Handshake failed after 3 attempts: .* answered 503/);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(dead.received.length, 3);
      } finally {
        await dead.close();
      }
    });

    it('$resend delivers recorded events again in one notification, in order, with their own numbers', async () => {
      const cs = (await request('GET', `${server.fhir}/metadata`)).body;
      const operations = cs.rest[0].resource.find((r: any) => r.type === 'Subscription').operation;
      assert.ok(operations.some((o: any) => o.name === 'resend' && o.definition.endsWith('/backport-subscription-resend')));
      const sub = await subscribe(server.fhir, topicSubscription(receiver.url, 'Patient/r1'));
      receiver.received.length = 0;
      const ids: string[] = [];
      for (const value of [61, 62, 63]) ids.push((await request('POST', `${server.fhir}/Observation`, observation('Patient/r1', '8867-4', value))).body.id);
      await waitFor('3 events', () => eventsOf(receiver.received).length >= 3);
      assert.deepEqual(eventsOf(receiver.received).map((e) => e.number), [1, 2, 3]);
      const secondAt = (await request('GET', `${server.fhir}/Subscription/${sub.id}/$events?eventsSinceNumber=2&eventsUntilNumber=2`)).body.entry[0].resource
        .parameter.find((p: any) => p.name === 'notification-event').part.find((p: any) => p.name === 'timestamp').valueInstant;

      receiver.received.length = 0;
      const resent = await request('POST', `${server.fhir}/Subscription/${sub.id}/$resend?eventsSinceNumber=2`);
      assert.equal(resent.status, 200, JSON.stringify(resent.body));
      assert.equal(resent.body.resourceType, 'OperationOutcome');
      assert.match(resent.body.issue[0].diagnostics, /^2 events queued for resending \(events 2 to 3\)$/);
      await waitFor('the resent notification', () => receiver.received.length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(receiver.received.map((r) => summary(r.body)), [{
        type: 'event-notification',
        since: 3,
        events: [{ number: 2, focus: `${server.fhir}/Observation/${ids[1]}` }, { number: 3, focus: `${server.fhir}/Observation/${ids[2]}` }],
      }], 'one notification carrying both events, with their own numbers');

      receiver.received.length = 0;
      const body = { resourceType: 'Parameters', parameter: [{ name: 'eventsSinceInstant', valueInstant: secondAt }, { name: 'eventsUntilNumber', valueString: '2' }] };
      const byTime = await request('POST', `${server.fhir}/Subscription/${sub.id}/$resend`, body);
      assert.match(byTime.body.issue[0].diagnostics, /^1 event queued for resending \(events 2 to 2\)$/);
      await waitFor('1 resent', () => receiver.received.length >= 1);
      assert.deepEqual(summary(receiver.received[0].body).events.map((e) => e.number), [2]);
    });

    it('$resend refuses bad ranges, R4 subscriptions and inactive ones', async () => {
      const topic = await subscribe(server.fhir, topicSubscription(receiver.url, 'Patient/r2'));
      const bad = [
        [`Subscription/${topic.id}/$resend?eventsSinceNumber=first`, /eventsSinceNumber must be an event number/],
        [`Subscription/${topic.id}/$resend?eventsSinceInstant=2025-01-01`, /eventsSinceInstant must be an instant/],
      ] as const;
      for (const [path, message] of bad) {
        const res = await request('POST', `${server.fhir}/${path}`);
        assert.equal(res.status, 400);
        assert.match(res.body.issue[0].diagnostics, message);
      }
      const r4 = await subscribe(server.fhir, { criteria: 'Observation?subject=Patient/r2', channel: { type: 'rest-hook', endpoint: receiver.url } });
      const refused = await request('POST', `${server.fhir}/Subscription/${r4.id}/$resend`);
      assert.equal(refused.status, 400);
      assert.match(refused.body.issue[0].diagnostics, /Only topic-based subscriptions/);
      await request('PUT', `${server.fhir}/Subscription/${topic.id}`, { ...topic, status: 'off' });
      const off = await request('POST', `${server.fhir}/Subscription/${topic.id}/$resend`);
      assert.equal(off.status, 400);
      assert.match(off.body.issue[0].diagnostics, /is off, not active/);
      assert.equal((await request('POST', `${server.fhir}/Subscription/nope/$resend`)).status, 404);
    });

    it('numbers no events of a classic R4 subscription: its $status has no count, and $events refuses it', async () => {
      const r4 = await subscribe(server.fhir, { criteria: 'Observation?subject=Patient/r3', channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' } });
      receiver.received.length = 0;
      const obs = (await request('POST', `${server.fhir}/Observation`, observation('Patient/r3'))).body;
      await waitFor('the R4 notification', () => receiver.received.length >= 1);
      assert.equal(JSON.parse(receiver.received[0].body).id, obs.id);
      const status = await request('GET', `${server.fhir}/Subscription/${r4.id}/$status`);
      assert.equal(status.status, 200);
      const names = status.body.entry[0].resource.parameter.map((p: any) => p.name);
      assert.deepEqual(names, ['subscription', 'status', 'type']);
      const events = await request('GET', `${server.fhir}/Subscription/${r4.id}/$events`);
      assert.equal(events.status, 400);
      assert.match(events.body.issue[0].diagnostics, /Only topic-based subscriptions number their events/);
      const rows = await server.vigil.repo.db.query<{ n: number }>('SELECT count(*)::int AS n FROM subscription_event WHERE subscription_id = $1', [r4.id]);
      assert.equal(rows[0].n, 0);
    });
  });
}
