import assert from 'node:assert/strict';
import { before, describe, it, mock } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BullMqQueue } from '../../src/jobs/bullmq-queue.ts';
import type { JobContext, JobQueue } from '../../src/jobs/queue.ts';
import { backends, cleanUpAfterTests, deferred, factoryOf, PREFIX, REDIS_URL, uniqueName, until } from './helpers.ts';

/** BullMQ's queue shared by workers in several processes, and what a process that died mid-way leaves behind. */
cleanUpAfterTests();

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
    assert.equal(await firstRunWithin(queue, 5_000), 'the batch again');
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
    assert.equal(await firstRunWithin(queue, 5_000), 'next');
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

/** The data of the first job the queue's worker runs, which must start within `ms`. */
async function firstRunWithin(queue: JobQueue<string>, ms: number): Promise<string> {
  const ran = deferred<string>();
  const started = Date.now();
  queue.process(async ({ data }) => ran.resolve(data));
  const data = await ran.promise;
  assert.ok(Date.now() - started < ms, `ran after ${Date.now() - started} ms`);
  return data;
}
