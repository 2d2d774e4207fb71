import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request, spawnVigil, useServer, type VigilProcess } from '../support.ts';
import { BACKPORT, observation, subscribe, waitFor } from './helpers.ts';

/**
 * Issue 5's no-loss promise under a crash (PostgreSQL, BullMQ on Redis): an API replica takes
 * writes while the worker replica is SIGKILLed with deliveries in flight, matches queued and
 * changes still in the outbox; once the worker is back, every subscription receives every event,
 * in event-number order, and the only duplicates are re-sends of an event number it already got.
 */

const PATIENT = 'Patient/kill-1';
const SUBSCRIPTIONS = 3;
const BURST = 8;

interface Notification {
  subscription: string;
  type: string;
  number?: number;
  focus?: string;
}

/** A rest-hook receiver that takes handshakes, and holds event notifications unanswered until released. */
async function startStallingReceiver() {
  const received: Notification[] = [];
  const held = new Set<ServerResponse>();
  let stalling = true;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const bundle = JSON.parse(Buffer.concat(chunks).toString());
      const params = bundle.entry[0].resource.parameter as any[];
      const param = (name: string) => params.find((p) => p.name === name);
      const subscription = param('subscription').valueReference.reference.split('/').pop();
      const type = param('type').valueCode;
      // a notification may carry several events, each with its focus entry in the same order
      const events = params.filter((p) => p.name === 'notification-event').map((p) => p.part as any[]);
      if (events.length === 0) received.push({ subscription, type });
      events.forEach((event, i) => received.push({
        subscription,
        type,
        number: Number(event.find((p) => p.name === 'event-number').valueString),
        focus: bundle.entry[1 + i]?.fullUrl.split('/').pop(),
      }));
      if (type === 'event-notification' && stalling) {
        held.add(res);
        res.on('close', () => held.delete(res));
        return;
      }
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    received,
    /** Notifications being held unanswered. */
    get held() {
      return held.size;
    },
    /** Answers every later notification at once. */
    release() {
      stalling = false;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('subscriptions survive a SIGKILLed worker: no notification lost (postgres, BullMQ)', () => {
  const env = {
    VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true',
    VIGIL_OUTBOX_POLL_MS: '200',
    VIGIL_SUBSCRIPTION_BACKOFF_MS: '100',
    // a held notification stays in flight until the kill
    VIGIL_SUBSCRIPTION_TIMEOUT_MS: '600000',
    REDIS_URL: 'redis://127.0.0.1:6379',
    // the killed worker's jobs are taken over after 10 s instead of 30
    VIGIL_JOB_LOCK_SECONDS: '10',
    VIGIL_QUEUE_PREFIX: `vigil-test-${randomUUID()}`,
  };
  let worker: VigilProcess | undefined;
  let receiver: Awaited<ReturnType<typeof startStallingReceiver>>;
  // registered before useServer's teardown, so the worker lets go of the database before it is dropped
  after(async () => {
    await worker?.stop();
    await receiver?.close();
  });
  const api = useServer('postgres', { ...env, VIGIL_ROLE: 'api' });
  const startWorker = () => spawnVigil({ ...env, VIGIL_ROLE: 'worker', DATABASE_URL: api.vigil.config.databaseUrl as string });
  before(async () => {
    receiver = await startStallingReceiver();
    worker = await startWorker();
  });

  it('delivers every event after the restart, in order per subscription, duplicates only of event numbers already sent', { timeout: 300_000 }, async () => {
    const subs: string[] = [];
    for (let i = 0; i < SUBSCRIPTIONS; i++) {
      const sub = await subscribe(api.fhir, {
        meta: { profile: [`${BACKPORT}backport-subscription`] },
        criteria: 'https://vigil.health/fhir/SubscriptionTopic/new-vital-sign',
        _criteria: { extension: [{ url: `${BACKPORT}backport-filter-criteria`, valueString: `Observation?patient=${PATIENT}` }] },
        channel: {
          type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json',
          _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'id-only' }] },
        },
      });
      subs.push(sub.id);
    }
    const written: string[] = [];
    const burst = async () => {
      for (let i = 0; i < BURST; i++) {
        const res = await request('POST', `${api.fhir}/Observation`, observation(PATIENT, '8867-4', 60 + written.length));
        assert.equal(res.status, 201);
        written.push(res.body.id);
      }
    };

    // 1: each subscription's first notification is held in flight; the rest queue behind it
    await burst();
    await waitFor('a delivery in flight per subscription', () => receiver.held >= SUBSCRIPTIONS, 60_000);
    // 2: committed just before the kill: in the outbox, or matched and queued
    await burst();
    await worker!.kill();
    // 3: committed while no worker runs: only in the outbox
    await burst();
    receiver.release();

    worker = await startWorker();
    const total = written.length;
    const events = (sub: string) => receiver.received.filter((n) => n.subscription === sub && n.type === 'event-notification');
    await waitFor('every event at every subscription', () => subs.every((s) => new Set(events(s).map((n) => n.number)).size >= total), 240_000);

    for (const sub of subs) {
      const got = events(sub);
      const byNumber = new Map<number, string>();
      let highest = 0;
      for (const n of got) {
        const number = n.number as number;
        const seen = byNumber.get(number);
        if (seen !== undefined) {
          assert.equal(n.focus, seen, 'a duplicate repeats the same event under the same number');
          continue;
        }
        assert.equal(number, highest + 1, `event numbers arrive in order without gaps: ${got.map((g) => g.number).join(',')}`);
        highest = number;
        byNumber.set(number, n.focus as string);
      }
      assert.equal(highest, total);
      assert.deepEqual([...byNumber.values()].sort(), [...written].sort(), 'every written Observation exactly once');
      const duplicates = got.length - byNumber.size;
      assert.ok(duplicates <= BURST * 2, `${duplicates} duplicates`);
    }
    // the held deliveries were re-sent: that is where duplicates come from
    assert.ok(receiver.received.filter((n) => n.type === 'event-notification').length > subs.length * total);
  });
});
