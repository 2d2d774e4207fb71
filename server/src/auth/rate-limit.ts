import type { IncomingMessage } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import { Redis } from 'ioredis';

const WINDOW_MS = 60_000;
/** Past this many tracked addresses, expired windows are swept before adding another. */
const SWEEP_AT = 10_000;

/** One request counted against `key`'s current window: how many it holds now and when it ends. */
export interface RateCounter {
  hit(key: string): Promise<{ count: number; resetAt: number }>;
  close(): void;
}

/** Each process counts its own requests: behind N replicas an address gets up to N × the limit. */
export function memoryCounter(): RateCounter {
  const windows = new Map<string, { resetAt: number; count: number }>();
  return {
    async hit(key) {
      const now = Date.now();
      let window = windows.get(key);
      if (!window || window.resetAt <= now) {
        if (windows.size >= SWEEP_AT) for (const [k, w] of windows) if (w.resetAt <= now) windows.delete(k);
        window = { resetAt: now + WINDOW_MS, count: 0 };
        windows.set(key, window);
      }
      window.count++;
      return window;
    },
    close() {},
  };
}

/** INCR, the window's expiry set by the first request in it, and what is left of it: one round trip. */
const HIT = `local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}`;

/**
 * Replicas share one count per key in Redis (fixed windows: `<prefix>:ratelimit:<key>` expiring at
 * the window's end). Redis being unreachable must not lock anyone out of signing in, nor stall the
 * request: commands fail at once and this process's own count answers meanwhile.
 */
export function redisCounter(url: string, prefix: string, onError: (err: Error) => void): RateCounter {
  const redis = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
  redis.on('error', onError);
  const local = memoryCounter();
  return {
    async hit(key) {
      try {
        const [count, ttl] = (await redis.eval(HIT, 1, `${prefix}:ratelimit:${key}`, WINDOW_MS)) as [number, number];
        return { count, resetAt: Date.now() + ttl };
      } catch {
        return local.hit(key);
      }
    },
    close() {
      redis.disconnect();
    },
  };
}

/**
 * A fixed one-minute window per client IP, counted by `counter` under `name`. Past the limit the
 * request is answered 429 with Retry-After (seconds to the window's end) by `reject`.
 */
export function rateLimit(name: string, perMinute: number, counter: RateCounter, clientIp: (req: Request) => string, reject: (res: Response) => void): RequestHandler {
  return (req, res, next) => {
    if (perMinute === 0) return next();
    counter.hit(`${name}:${clientIp(req)}`).then(({ count, resetAt }) => {
      if (count <= perMinute) return next();
      res.status(429).set('Retry-After', String(Math.max(1, Math.ceil((resetAt - Date.now()) / 1000))));
      reject(res);
    }, next);
  };
}

/**
 * The caller's address: the socket's, or behind one trusted proxy the address that proxy saw (the
 * last X-Forwarded-For entry), as Express's req.ip and the token endpoint take it. Also for
 * requests Express never sees (websocket upgrades).
 */
export function clientIp(trustProxy: boolean): (req: IncomingMessage) => string {
  return (req) => {
    const header = trustProxy ? req.headers['x-forwarded-for'] : undefined;
    const forwarded = (Array.isArray(header) ? header.join(',') : header)?.split(',').pop()?.trim();
    return forwarded || req.socket.remoteAddress || 'unknown';
  };
}
