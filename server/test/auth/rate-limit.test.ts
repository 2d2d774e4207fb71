import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisCounter } from '../../src/auth/rate-limit.ts';
import { freePort, useServer } from '../support.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('rate limits shared by replicas through Redis (pglite)', () => {
  const prefix = `vigil-rl-${randomBytes(4).toString('hex')}`;
  const env = { REDIS_URL, VIGIL_QUEUE_PREFIX: prefix, VIGIL_RATE_LIMIT_TOKEN: '6' };
  // two replicas of one deployment: separate processes' state, one Redis
  const a = useServer('pglite', env);
  const b = useServer('pglite', env);
  const redis = new Redis(REDIS_URL);
  after(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('counts token requests from one address across replicas: 429 with Retry-After once their sum passes the limit', async () => {
    const token = (base: string) => fetch(`${base}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&client_id=nobody&client_secret=x' });
    // each replica took one request for its bootstrap token; four more each: 10 in all, at most 5 per replica
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 4; i++) {
      for (const s of [a, b]) {
        const res = await token(s.base);
        statuses.push(res.status);
        if (res.status === 429) limited ??= res;
        else await res.arrayBuffer();
      }
    }
    assert.equal(statuses.filter((st) => st === 429).length, 4, `from the 7th request on, every one is refused, whichever replica takes it: ${statuses}`);
    assert.ok(limited);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
    assert.equal(((await limited.json()) as { error: string }).error, 'too_many_requests');

    const [key] = await redis.keys(`${prefix}:ratelimit:token:*`);
    assert.ok(key, 'the count lives in Redis');
    assert.equal(await redis.get(key), '10');
    const ttl = await redis.pttl(key);
    assert.ok(ttl > 0 && ttl <= 60_000, String(ttl));
  });

  it('counts in the process when Redis is unreachable, without waiting for it', async () => {
    const counter = redisCounter(`redis://127.0.0.1:${await freePort()}`, prefix, () => {});
    try {
      const start = Date.now();
      assert.equal((await counter.hit('k')).count, 1);
      assert.equal((await counter.hit('k')).count, 2);
      assert.ok(Date.now() - start < 1_000);
    } finally {
      counter.close();
    }
  });
});
