import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { coalesceWrites } from '../../src/jobs/coalesced-writes.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Counts the socket's system-call-level writes (one per `_write`, one per `_writev`). */
function countWrites(socket: Socket): { count: number } {
  const counter = { count: 0 };
  const internals = socket as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  for (const name of ['_write', '_writev'] as const) {
    const original = internals[name];
    internals[name] = function (this: Socket, ...args: unknown[]) {
      counter.count++;
      return original.apply(this, args);
    };
  }
  return counter;
}

describe('Redis writes coalesced per loop turn', () => {
  for (const coalesced of [true, false]) {
    it(`${coalesced ? 'sends' : 'without it, ioredis sends'} a turn's commands in ${coalesced ? 'one write' : 'a write each'}, answered in order`, async () => {
      const redis = new Redis(REDIS_URL, { lazyConnect: true });
      if (coalesced) coalesceWrites(redis);
      await redis.connect();
      if (redis.status !== 'ready') await once(redis, 'ready');
      const key = `vigil-test-coalesce:${randomUUID()}`;
      try {
        const writes = countWrites(redis.stream as Socket);
        const replies = await Promise.all(Array.from({ length: 50 }, () => redis.incr(key)));
        assert.deepEqual(replies, Array.from({ length: 50 }, (_, i) => i + 1));
        assert.equal(writes.count, coalesced ? 1 : 50);
        // and again in a later turn: the cork is per turn, not once
        assert.equal(await redis.incr(key), 51);
      } finally {
        await redis.del(key);
        await redis.quit();
      }
    });
  }
});
