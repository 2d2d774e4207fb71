import assert from 'node:assert/strict';
import { describe, it, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../../src/jobs/options.ts';
import type { DeadLetter, JobContext } from '../../src/jobs/queue.ts';
import { backends, cleanUpAfterTests, deferred, factoryOf, FAST, uniqueName, until } from './helpers.ts';

cleanUpAfterTests();

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
