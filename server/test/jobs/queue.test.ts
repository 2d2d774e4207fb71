import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BullMqQueue } from '../../src/jobs/bullmq-queue.ts';
import { backoffDelay } from '../../src/jobs/options.ts';
import { createQueueFactory } from '../../src/jobs/queue.ts';
import type { DeadLetter, JobContext, QueueFactory } from '../../src/jobs/queue.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `vigil-test-${randomUUID()}`;
const FAST = { baseMs: 20, capMs: 80 };

interface Backend {
  name: string;
  factory(): QueueFactory;
  /** Fails (never skips) the backend's tests when its service is missing. */
  ready(): Promise<void>;
}

/** Checked once, up front: BullMQ would otherwise wait for Redis forever. */
let redisChecked: Promise<void> | undefined;
function assertRedisReachable(): Promise<void> {
  redisChecked ??= (async () => {
    const redis = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null });
    try {
      await redis.connect();
      assert.equal(await redis.ping(), 'PONG');
    } catch (error) {
      throw new Error(`Redis at ${REDIS_URL} is unreachable; the BullMQ tests need it`, { cause: error });
    } finally {
      redis.disconnect();
    }
  })();
  return redisChecked;
}

const backends: Backend[] = [
  { name: 'in-process', factory: () => createQueueFactory(), ready: async () => {} },
  {
    name: 'BullMQ',
    factory: () => createQueueFactory({ redisUrl: REDIS_URL, prefix: PREFIX }),
    ready: assertRedisReachable,
  },
];

let queueCount = 0;
const uniqueName = () => `q${++queueCount}`;

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for condition');
    await sleep(10);
  }
}

/** A test's factories, closed after it whatever its outcome. */
const open: QueueFactory[] = [];
function factoryOf(backend: Backend): QueueFactory {
  const factory = backend.factory();
  open.push(factory);
  return factory;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((factory) => factory.close({ timeoutMs: 1_000 })));
});

describe('backoffDelay', () => {
  it('keeps half the exponential step and jitters the other half, up to the cap', () => {
    const day = 24 * 60 * 60 * 1_000;
    const backoff = { baseMs: 1_000, capMs: day };
    assert.equal(backoffDelay(1, backoff, () => 0), 500);
    assert.equal(backoffDelay(1, backoff, () => 1), 1_000);
    assert.equal(backoffDelay(4, backoff, () => 1), 8_000);
    assert.equal(backoffDelay(40, backoff, () => 0), day / 2);
    assert.equal(backoffDelay(1_000, backoff, () => 1), day);
  });
});

after(async () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null });
  try {
    await redis.connect();
    const keys: string[] = [];
    for await (const batch of redis.scanStream({ match: `${PREFIX}:*`, count: 1_000 })) keys.push(...(batch as string[]));
    if (keys.length > 0) await redis.del(...keys);
  } catch {
    // Unreachable Redis already failed the BullMQ tests; nothing to clean.
  } finally {
    redis.disconnect();
  }
});

for (const backend of backends) {
  describe(`${backend.name} queue`, { timeout: 30_000 }, () => {
    before(backend.ready);

    it('runs a job', async () => {
      const queue = factoryOf(backend).queue<{ n: number }>(uniqueName());
      const ran = deferred<JobContext<{ n: number }>>();
      queue.process(async (job) => ran.resolve(job));
      const id = await queue.enqueue({ n: 1 });
      const job = await ran.promise;
      assert.equal(job.id, id);
      assert.deepEqual(job.data, { n: 1 });
      assert.equal(job.attempt, 1);
    });

    it('counts the jobs pending: waiting, delayed and running, not done', async () => {
      const queue = factoryOf(backend).queue<string>(uniqueName());
      const release = deferred();
      const started: string[] = [];
      await queue.enqueue('a');
      await queue.enqueue('b');
      await queue.enqueue('later', { delayMs: 60_000 });
      assert.equal(await queue.pending(), 3);
      queue.process(async (job) => {
        started.push(job.data);
        await release.promise;
      }, { concurrency: 1 });
      await until(() => started.length === 1);
      assert.equal(await queue.pending(), 3, 'one running, one waiting, one delayed');
      release.resolve();
      await until(() => started.length === 2);
      for (let i = 0; i < 100 && (await queue.pending()) > 1; i++) await sleep(20);
      assert.equal(await queue.pending(), 1, 'the delayed job only');
    });

    it('deduplicates by jobId while the job exists', async () => {
      const queue = factoryOf(backend).queue<string>(uniqueName());
      const runs: string[] = [];
      const release = deferred();
      // ':' and digits-only ids are legal for callers even though BullMQ forbids them in its own ids.
      assert.equal(await queue.enqueue('first', { jobId: 'sub:42' }), 'sub:42');
      assert.equal(await queue.enqueue('second', { jobId: 'sub:42' }), 'sub:42');
      await queue.enqueue('numeric', { jobId: '42' });
      queue.process(async (job) => {
        runs.push(job.data);
        if (job.data === 'first') await release.promise;
      });
      await until(() => runs.includes('first'));
      assert.equal(await queue.enqueue('while running', { jobId: 'sub:42' }), 'sub:42');
      release.resolve();
      await until(() => runs.includes('numeric'));
      await sleep(150);
      assert.deepEqual(runs.sort(), ['first', 'numeric']);
      // Once completed, the id is free again.
      await queue.enqueue('again', { jobId: 'sub:42' });
      await until(() => runs.includes('again'));
    });

    it('delays a job', async () => {
      const queue = factoryOf(backend).queue<number>(uniqueName());
      const ran = deferred<number>();
      queue.process(async () => ran.resolve(Date.now()));
      const start = Date.now();
      await queue.enqueue(1, { delayMs: 400 });
      const elapsed = (await ran.promise) - start;
      assert.ok(elapsed >= 390, `ran after ${elapsed} ms`);
      assert.ok(elapsed < 2_000, `ran after ${elapsed} ms`);
    });

    it('retries with backoff, then succeeds', async () => {
      const queue = factoryOf(backend).queue<string>(uniqueName());
      const attempts: number[] = [];
      const times: number[] = [];
      const done = deferred();
      queue.process(async (job) => {
        attempts.push(job.attempt);
        times.push(Date.now());
        if (job.attempt < 3) throw new Error(`flaky ${job.attempt}`);
        done.resolve();
      });
      await queue.enqueue('x', { attempts: 3, backoff: FAST });
      await done.promise;
      assert.deepEqual(attempts, [1, 2, 3]);
      // Equal jitter keeps at least half of each step: 10 ms, then 20 ms.
      assert.ok(times[1]! - times[0]! >= 9 && times[2]! - times[1]! >= 19);
      assert.deepEqual(await queue.deadLetters(), []);
    });

    it('dead-letters after the last attempt, keeping the error', async () => {
      const queue = factoryOf(backend).queue<{ to: string }>(uniqueName());
      const buried = deferred<DeadLetter<{ to: string }>>();
      let runs = 0;
      queue.process(
        async (job) => {
          runs += 1;
          throw new Error(`refused ${job.attempt}`);
        },
        { onDeadLetter: buried.resolve },
      );
      await queue.enqueue({ to: 'partner' }, { jobId: 'delivery-1', attempts: 2, backoff: FAST, groupKey: 'sub-1' });
      const dead = await buried.promise;
      assert.deepEqual(
        { id: dead.id, data: dead.data, groupKey: dead.groupKey, attempts: dead.attempts, error: dead.error },
        { id: 'delivery-1', data: { to: 'partner' }, groupKey: 'sub-1', attempts: 2, error: 'refused 2' },
      );
      assert.ok(dead.failedAt > 0);
      const listed = await queue.deadLetters();
      assert.deepEqual(listed.map((letter) => [letter.id, letter.error]), [['delivery-1', 'refused 2']]);
      // A dead letter still holds its id, and its group moves on.
      await queue.enqueue({ to: 'partner' }, { jobId: 'delivery-1', groupKey: 'sub-1' });
      await queue.enqueue({ to: 'next' }, { attempts: 1, groupKey: 'sub-1' });
      await until(() => runs === 3);
      await sleep(100);
      assert.equal(runs, 3);
    });

    it('honours the concurrency limit', async () => {
      const queue = factoryOf(backend).queue<number>(uniqueName());
      let running = 0;
      let peak = 0;
      let finished = 0;
      queue.process(
        async () => {
          running += 1;
          peak = Math.max(peak, running);
          await sleep(60);
          running -= 1;
          finished += 1;
        },
        { concurrency: 2 },
      );
      for (let i = 0; i < 6; i++) await queue.enqueue(i);
      await until(() => finished === 6);
      assert.equal(peak, 2);
    });

    it('runs jobs with the same groupKey one at a time in enqueue order, even across retries', async () => {
      const queue = factoryOf(backend).queue<{ key: string; n: number }>(uniqueName());
      const order = new Map<string, number[]>();
      const busy = new Set<string>();
      let sameKeyOverlaps = 0;
      let overlaps = 0;
      let running = 0;
      let peak = 0;
      let finished = 0;
      queue.process(
        async ({ data, attempt }) => {
          // Counted, not asserted: a throw here would only fail the job.
          if (busy.has(data.key)) sameKeyOverlaps += 1;
          busy.add(data.key);
          running += 1;
          peak = Math.max(peak, running);
          if (running > 1) overlaps += 1;
          await sleep(Math.random() * 20);
          busy.delete(data.key);
          running -= 1;
          if (data.key === 'a' && data.n === 1 && attempt === 1) throw new Error('transient');
          order.set(data.key, [...(order.get(data.key) ?? []), data.n]);
          finished += 1;
        },
        { concurrency: 4 },
      );
      for (let n = 0; n < 5; n++) {
        for (const key of ['a', 'b', 'c']) await queue.enqueue({ key, n }, { groupKey: key, attempts: 2, backoff: FAST });
      }
      await until(() => finished === 15);
      for (const key of ['a', 'b', 'c']) assert.deepEqual(order.get(key), [0, 1, 2, 3, 4], `order of ${key}`);
      assert.equal(sameKeyOverlaps, 0);
      assert.ok(overlaps > 0 && peak > 1, 'different keys should run in parallel');
    });

    it("counts a group's jobs not yet done, its running head included", async () => {
      const queue = factoryOf(backend).queue<number>(uniqueName());
      const release = deferred();
      const started: number[] = [];
      queue.process(async (job) => {
        started.push(job.data);
        if (job.data === 0) await release.promise;
      }, { concurrency: 4 });
      for (const n of [0, 1, 2]) await queue.enqueue(n, { groupKey: 'g' });
      await queue.enqueue(9);
      await until(() => started.includes(0) && started.includes(9));
      assert.equal(await queue.groupSize('g'), 3);
      assert.equal(await queue.groupSize('other'), 0);
      release.resolve();
      await until(() => started.length === 4);
      for (let i = 0; i < 100 && (await queue.groupSize('g')) > 0; i++) await sleep(20);
      assert.equal(await queue.groupSize('g'), 0);
    });

    it('enqueueMany adds jobs as enqueue would one after the other: group order, delays and ids kept', async () => {
      const queue = factoryOf(backend).queue<{ key: string; n: number }>(uniqueName());
      const order = new Map<string, number[]>();
      const release = deferred();
      let finished = 0;
      queue.process(
        async ({ data }) => {
          if (data.key === 'a' && data.n === 0) await release.promise;
          order.set(data.key, [...(order.get(data.key) ?? []), data.n]);
          finished += 1;
        },
        { concurrency: 4 },
      );
      const batch = (from: number) => [0, 1, 2].flatMap((i) => ['a', 'b'].map((key) => ({ data: { key, n: from + i }, options: { jobId: `${key}-${from + i}`, groupKey: key } })));
      const ids = await queue.enqueueMany(batch(0));
      assert.deepEqual(ids, ['a-0', 'b-0', 'a-1', 'b-1', 'a-2', 'b-2']);
      // a second call queues behind the first (a's head is still running); a repeated id is absorbed
      await queue.enqueueMany([...batch(3), { data: { key: 'a', n: 99 }, options: { jobId: 'a-1', groupKey: 'a' } }, { data: { key: 'c', n: 0 }, options: { delayMs: 300 } }]);
      await until(() => order.get('b')?.length === 6);
      assert.equal(order.get('a'), undefined, 'a waits for its head');
      release.resolve();
      await until(() => finished === 13);
      assert.deepEqual(order.get('a'), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(order.get('b'), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(order.get('c'), [0]);
    });

    it('close waits for an in-flight job', async () => {
      const queue = factoryOf(backend).queue<number>(uniqueName());
      const started = deferred();
      let finished = false;
      queue.process(async () => {
        started.resolve();
        await sleep(300);
        finished = true;
      });
      await queue.enqueue(1);
      await started.promise;
      await queue.close({ timeoutMs: 5_000 });
      assert.equal(finished, true);
      await assert.rejects(queue.enqueue(2), /closed/);
    });

    it('close gives up after its timeout and aborts the job', async () => {
      const queue = factoryOf(backend).queue<number>(uniqueName());
      const started = deferred<AbortSignal>();
      queue.process(async ({ signal }) => {
        started.resolve(signal);
        await sleep(10_000, undefined, { signal }).catch(() => {});
      });
      await queue.enqueue(1);
      const signal = await started.promise;
      const start = Date.now();
      await queue.close({ timeoutMs: 100 });
      assert.ok(Date.now() - start < 2_000);
      assert.equal(signal.aborted, true);
    });
  });
}

describe('BullMQ queue across processes', { timeout: 30_000 }, () => {
  const bullmq = backends[1]!;
  before(bullmq.ready);

  it('two workers share the jobs without running one twice', async () => {
    const name = uniqueName();
    const queues = [factoryOf(bullmq).queue<number>(name), factoryOf(bullmq).queue<number>(name)];
    const runs = new Map<number, number>();
    const perWorker = [0, 0];
    queues.forEach((queue, worker) =>
      queue.process(
        async ({ data }) => {
          runs.set(data, (runs.get(data) ?? 0) + 1);
          perWorker[worker]! += 1;
          await sleep(15);
        },
        { concurrency: 2 },
      ),
    );
    for (let i = 0; i < 40; i++) await queues[i % 2]!.enqueue(i);
    await until(() => runs.size === 40);
    await sleep(200);
    assert.ok([...runs.values()].every((count) => count === 1), 'each job ran once');
    assert.ok(perWorker[0]! > 0 && perWorker[1]! > 0, `both workers took jobs: ${perWorker}`);
  });

  it('keeps per-key order when two workers share a queue', async () => {
    const name = uniqueName();
    const queues = [factoryOf(bullmq).queue<{ key: string; n: number }>(name), factoryOf(bullmq).queue<{ key: string; n: number }>(name)];
    const order = new Map<string, number[]>();
    const busy = new Set<string>();
    let sameKeyOverlaps = 0;
    let finished = 0;
    for (const queue of queues) {
      queue.process(
        async ({ data }) => {
          if (busy.has(data.key)) sameKeyOverlaps += 1;
          busy.add(data.key);
          await sleep(Math.random() * 10);
          busy.delete(data.key);
          order.set(data.key, [...(order.get(data.key) ?? []), data.n]);
          finished += 1;
        },
        { concurrency: 3 },
      );
    }
    for (let n = 0; n < 6; n++) {
      for (const key of ['a', 'b', 'c']) await queues[n % 2]!.enqueue({ key, n }, { groupKey: key });
    }
    await until(() => finished === 18);
    for (const key of ['a', 'b', 'c']) assert.deepEqual(order.get(key), [0, 1, 2, 3, 4, 5], `order of ${key}`);
    assert.equal(sameKeyOverlaps, 0);
  });

  it('a job closed out of a worker goes back to the queue for another', async () => {
    const name = uniqueName();
    const first = factoryOf(bullmq).queue<string>(name);
    const started = deferred();
    first.process(async ({ signal }) => {
      started.resolve();
      await sleep(10_000, undefined, { signal }).catch(() => {});
    });
    await first.enqueue('handed back', { jobId: 'h1' });
    await started.promise;
    await first.close({ timeoutMs: 50 });
    const second = factoryOf(bullmq).queue<string>(name);
    const rerun = deferred<JobContext<string>>();
    second.process(async (job) => rerun.resolve(job));
    const job = await rerun.promise;
    assert.equal(job.id, 'h1');
  });

  it('an enqueue that failed after claiming its group place can be retried: the job keeps its place', async () => {
    const queue = factoryOf(bullmq).queue<string>(uniqueName());
    const runs: string[] = [];
    queue.process(async ({ data }) => {
      runs.push(data);
    });
    // The place is claimed in one round trip, the job added in the next: the connection drops between them.
    const addBulk = mock.method(Queue.prototype, 'addBulk');
    try {
      addBulk.mock.mockImplementationOnce(async () => {
        throw new Error('connection lost');
      });
      await assert.rejects(queue.enqueue('first', { jobId: 'f', groupKey: 'g' }), /connection lost/);
    } finally {
      addBulk.mock.restore();
    }
    await queue.enqueue('second', { jobId: 's', groupKey: 'g' });
    assert.equal(await queue.enqueue('first', { jobId: 'f', groupKey: 'g' }), 'f');
    await until(() => runs.length === 2);
    assert.deepEqual(runs, ['first', 'second']);
  });

  it('groupRecheckMs bounds the wait behind a head that a dead process claimed and never added', async () => {
    const name = uniqueName();
    const queue = factoryOf(bullmq).queue<string>(name, { groupRecheckMs: 300 });
    // As a drainer that died after claiming its batch's place: the rows are drained again under another id.
    const redis = new Redis(REDIS_URL);
    try {
      await redis.rpush(`${PREFIX}:${name}:vigil-group:g`, 'jlost');
      await redis.hset(`${PREFIX}:${name}:vigil-groups`, 'jlost', Date.now());
    } finally {
      await redis.quit();
    }
    await queue.enqueue('the batch again', { jobId: 'again', groupKey: 'g' });
    const ran = deferred<string>();
    const started = Date.now();
    queue.process(async ({ data }) => ran.resolve(data));
    assert.equal(await ran.promise, 'the batch again');
    assert.ok(Date.now() - started < 5_000, `ran after ${Date.now() - started} ms`);
  });

  it('groupRecheckMs bounds the wait of a job whose head finished in a process that died before waking it', async () => {
    const name = uniqueName();
    const queue = factoryOf(bullmq).queue<string>(name, { groupRecheckMs: 300 });
    await queue.enqueue('head', { jobId: 'a', groupKey: 'g' });
    await queue.enqueue('next', { jobId: 'b', groupKey: 'g' });
    // The dead process ran the head and took it off its group, but never woke the next job.
    const redis = new Redis(REDIS_URL);
    const bull = new Queue(name, { connection: redis, prefix: PREFIX });
    try {
      await bull.remove('ja');
      await redis.lpop(`${PREFIX}:${name}:vigil-group:g`);
      await redis.hdel(`${PREFIX}:${name}:vigil-groups`, 'ja');
    } finally {
      await bull.close();
      await redis.quit();
    }
    const ran = deferred<string>();
    const started = Date.now();
    queue.process(async ({ data }) => ran.resolve(data));
    assert.equal(await ran.promise, 'next');
    assert.ok(Date.now() - started < 5_000, `ran after ${Date.now() - started} ms`);
  });

  it('skips a group head left behind by a dead process', async () => {
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const name = uniqueName();
    const queue = new BullMqQueue<string>(name, {
      redis,
      prefix: PREFIX,
      onError: (error) => assert.fail(error),
      groupTiming: { parkMs: 200, staleMs: 100 },
    });
    try {
      // As if an enqueuer died after claiming the group's head but before adding the job.
      await redis.rpush(`${PREFIX}:${name}:vigil-group:g`, 'jlost');
      await redis.hset(`${PREFIX}:${name}:vigil-groups`, 'jlost', Date.now() - 1_000);
      const ran = deferred<string>();
      queue.process(async ({ data }) => ran.resolve(data));
      await queue.enqueue('after the lost one', { groupKey: 'g' });
      assert.equal(await ran.promise, 'after the lost one');
    } finally {
      await queue.close({ timeoutMs: 1_000 });
      await redis.quit();
    }
  });
});
