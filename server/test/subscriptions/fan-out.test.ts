import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createQueueFactory, type DeadLetter, type JobQueue, type QueueFactory } from '../../src/jobs/queue.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { loadSubscriptionConfig } from '../../src/subscriptions/config.ts';
import type { Delivery } from '../../src/subscriptions/delivery.ts';
import { FanOutHandler, fanOutJobs, type QueuedDelivery } from '../../src/subscriptions/fan-out.ts';

/** A delivery of one (pretend) event to `sub`, queued as `jobId` if need be. */
const delivery = (sub: string, n: number): QueuedDelivery => ({
  delivery: { subscriptionId: sub, kind: 'event', events: [{ number: n, timestamp: new Date().toISOString(), focus: { resourceType: 'Observation', id: `o${n}`, versionId: 1, interaction: 'create' } }] },
  jobId: `${sub}/${n}`,
});

const eventOf = (d: Delivery) => `${d.subscriptionId}/${d.events?.[0].number}`;

/** The fan-out's routing, over the real in-process queue, with a deliverer that records (and may fail or stall) each attempt. */
describe('fan-out of first delivery attempts', () => {
  let queues: QueueFactory;
  let deliveries: JobQueue<Delivery>;
  let attempted: string[];
  let given: DeadLetter<Delivery>[];
  let behaviour: (d: Delivery) => Promise<void>;
  const signal = new AbortController().signal;
  const handler = (attempts = 3) => new FanOutHandler(
    {
      deliver: async (d) => {
        attempted.push(eventOf(d));
        await behaviour(d);
      },
      onDeadLetter: (dead) => given.push(dead),
    },
    deliveries,
    loadSubscriptionConfig({ VIGIL_SUBSCRIPTION_ATTEMPTS: String(attempts), VIGIL_SUBSCRIPTION_BACKOFF_MS: '20', VIGIL_SUBSCRIPTION_BACKOFF_CAP_MS: '40' }),
    createLogger('silent'),
  );
  const run = (h: FanOutHandler, ...list: QueuedDelivery[]) => h.handle({ id: 'f', data: { deliveries: list }, attempt: 1, signal });

  beforeEach(() => {
    queues = createQueueFactory();
    deliveries = queues.queue<Delivery>('deliveries');
    attempted = [];
    given = [];
    behaviour = async () => {};
  });
  afterEach(() => queues.close());

  it('splits a batch into one job per shard, each subscription always in the same one', () => {
    const config = loadSubscriptionConfig({});
    const list = Array.from({ length: 40 }, (_, i) => delivery(`s${i % 20}`, i));
    const jobs = fanOutJobs(list, config);
    assert.ok(jobs.length > 1 && jobs.length <= 8, `${jobs.length} shards`);
    assert.equal(jobs.reduce((n, j) => n + j.data.deliveries.length, 0), 40);
    const shardOf = new Map<string, string>();
    for (const job of jobs) {
      for (const { delivery: d } of job.data.deliveries) {
        assert.equal(shardOf.get(d.subscriptionId) ?? job.options.groupKey, job.options.groupKey);
        shardOf.set(d.subscriptionId, job.options.groupKey as string);
      }
    }
    // the same batch again (re-drained) has the same job ids
    assert.deepEqual(fanOutJobs(list, config).map((j) => j.options.jobId), jobs.map((j) => j.options.jobId));
  });

  it('sends first attempts at once, and queues a delivery behind the ones its subscription still has', async () => {
    const h = handler();
    await deliveries.enqueue(delivery('a', 1).delivery, { jobId: 'a/1', groupKey: 'a' });
    await run(h, delivery('a', 2), delivery('b', 1));
    assert.deepEqual(attempted, ['b/1']);
    assert.equal(await deliveries.groupSize('a'), 2);
    const order: string[] = [];
    deliveries.process(async ({ data }) => void order.push(eventOf(data)));
    for (let i = 0; i < 100 && order.length < 2; i++) await sleep(10);
    assert.deepEqual(order, ['a/1', 'a/2']);
  });

  it('queues a failed first attempt with the attempts left, after a backoff; later deliveries wait behind it', async () => {
    const h = handler(3);
    behaviour = async (d) => {
      if (d.subscriptionId === 'c') throw new Error('answered 503');
    };
    await run(h, delivery('c', 1), delivery('b', 1));
    assert.deepEqual(attempted, ['c/1', 'b/1']);
    await run(h, delivery('c', 2));
    assert.deepEqual(attempted, ['c/1', 'b/1'], 'c/2 not tried while c/1 waits for its retry');
    assert.equal(await deliveries.groupSize('c'), 2);
    const runs: { event: string; attempt: number }[] = [];
    deliveries.process(async ({ data, attempt }) => {
      runs.push({ event: eventOf(data), attempt });
      throw new Error('still down');
    });
    for (let i = 0; i < 200 && (await deliveries.deadLetters()).length < 2; i++) await sleep(10);
    // c/1 had its first attempt in the fan-out, so two are left; c/2, queued untried, has all three
    assert.deepEqual(runs.map((r) => r.event), ['c/1', 'c/1', 'c/2', 'c/2', 'c/2']);
    const dead = await deliveries.deadLetters();
    const first = dead.find((d) => eventOf(d.data) === 'c/1');
    assert.equal(first?.attempts, 2);
    assert.equal(first?.data.attempted, 1);
  });

  it('gives a failed first attempt up at once when one attempt is all there is', async () => {
    const h = handler(1);
    behaviour = async () => {
      throw new Error('answered 500');
    };
    await run(h, delivery('d', 1));
    assert.equal(given.length, 1);
    assert.equal(given[0].attempts, 1);
    assert.match(given[0].error, /answered 500/);
    assert.equal(await deliveries.groupSize('d'), 0);
  });

  it('sidelines a subscription whose first attempt held its shard for a second: its next deliveries are queued', async () => {
    const h = handler();
    behaviour = async (d) => {
      if (d.subscriptionId === 'slow') await sleep(1_050);
    };
    await run(h, delivery('slow', 1), delivery('b', 1));
    await run(h, delivery('slow', 2), delivery('b', 2));
    assert.deepEqual(attempted, ['slow/1', 'b/1', 'b/2']);
    assert.equal(await deliveries.groupSize('slow'), 1);
  });
});
