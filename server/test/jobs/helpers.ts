import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createQueueFactory, type QueueFactory } from '../../src/jobs/queue.ts';

/** What the job queue's test files share: the two backends, Redis, and per-test factories. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const PREFIX = `vigil-test-${randomUUID()}`;
export const FAST = { baseMs: 20, capMs: 80 };

export interface Backend {
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

export const backends: Backend[] = [
  { name: 'in-process', factory: () => createQueueFactory(), ready: async () => {} },
  {
    name: 'BullMQ',
    factory: () => createQueueFactory({ redisUrl: REDIS_URL, prefix: PREFIX }),
    ready: assertRedisReachable,
  },
];

let queueCount = 0;
export const uniqueName = () => `q${++queueCount}`;

export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for condition');
    await sleep(10);
  }
}

/** A test's factories, closed after it whatever its outcome. */
const open: QueueFactory[] = [];
export function factoryOf(backend: Backend): QueueFactory {
  const factory = backend.factory();
  open.push(factory);
  return factory;
}

/** Closes the factories each test opened (`factoryOf`) after it, and removes the file's Redis keys at the end: call once per test file. */
export function cleanUpAfterTests(): void {
  afterEach(async () => {
    await Promise.all(open.splice(0).map((factory) => factory.close({ timeoutMs: 1_000 })));
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
}
