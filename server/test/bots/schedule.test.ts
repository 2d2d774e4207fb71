import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createQueueFactory, type QueueFactory } from '../../src/jobs/queue.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Scheduled jobs (the bots' sweeps): every period runs once, however many replicas schedule it. */
const backends: { name: string; factories(): QueueFactory[] }[] = [
  { name: 'in-process', factories: () => [createQueueFactory()] },
  {
    name: 'BullMQ, two replicas',
    factories: () => {
      const prefix = `vigil-test-${randomUUID()}`;
      return [createQueueFactory({ redisUrl: REDIS_URL, prefix }), createQueueFactory({ redisUrl: REDIS_URL, prefix })];
    },
  },
];

for (const backend of backends) {
  describe(`JobQueue.schedule (${backend.name})`, () => {
    it('runs the first job at once, then one per period across replicas', async () => {
      const factories = backend.factories();
      const runs: { replica: number; at: number; data: string }[] = [];
      const started = Date.now();
      try {
        for (const [replica, factory] of factories.entries()) {
          const queue = factory.queue<string>('sweeps');
          queue.process(async (job) => void runs.push({ replica, at: Date.now() - started, data: job.data }), { concurrency: 2 });
          await queue.schedule('tick', 400, 'sweep');
        }
        await sleep(1_900);
      } finally {
        await Promise.all(factories.map((f) => f.close({ timeoutMs: 500 })));
      }
      assert.ok(runs[0].at < 300, `first run after ${runs[0].at} ms`);
      // 0, 400, 800, 1200, 1600 ms: five periods; a second replica adds none
      assert.ok(runs.length >= 4 && runs.length <= 6, `${runs.length} runs: ${JSON.stringify(runs)}`);
      assert.ok(runs.every((r) => r.data === 'sweep'));
      const gaps = runs.slice(1).map((r, i) => r.at - runs[i].at);
      assert.ok(gaps.every((g) => g > 200), `runs too close: ${gaps}`);
    });

    it('replaces a schedule scheduled again under the same id, and rejects a bad period', async () => {
      const [factory, ...others] = backend.factories();
      await Promise.all(others.map((f) => f.close()));
      const queue = factory.queue<string>('sweeps');
      const runs: string[] = [];
      try {
        queue.process(async (job) => void runs.push(job.data));
        await assert.rejects(queue.schedule('tick', 0, 'never'), /everyMs must be a positive integer/);
        await queue.schedule('tick', 60_000, 'old');
        await queue.schedule('tick', 300, 'new');
        await sleep(1_000);
      } finally {
        await factory.close({ timeoutMs: 500 });
      }
      assert.ok(runs.filter((d) => d === 'new').length >= 2, JSON.stringify(runs));
      assert.ok(runs.filter((d) => d === 'old').length <= 1, JSON.stringify(runs));
    });
  });
}
