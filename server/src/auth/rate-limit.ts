import type { Request, RequestHandler, Response } from 'express';

const WINDOW_MS = 60_000;
/** Past this many tracked addresses, expired windows are swept before adding another. */
const SWEEP_AT = 10_000;

/**
 * A fixed one-minute window per client IP, in this process's memory: each replica counts its own
 * requests, so behind N replicas an address gets up to N × `perMinute`. Past the limit the request
 * is answered 429 with Retry-After (seconds to the window's end) by `reject`.
 */
export function rateLimit(perMinute: number, clientIp: (req: Request) => string, reject: (res: Response) => void): RequestHandler {
  const windows = new Map<string, { resetAt: number; count: number }>();
  return (req, res, next) => {
    if (perMinute === 0) return next();
    const now = Date.now();
    const ip = clientIp(req);
    let window = windows.get(ip);
    if (!window || window.resetAt <= now) {
      if (windows.size >= SWEEP_AT) for (const [key, w] of windows) if (w.resetAt <= now) windows.delete(key);
      window = { resetAt: now + WINDOW_MS, count: 0 };
      windows.set(ip, window);
    }
    if (++window.count <= perMinute) return next();
    res.status(429).set('Retry-After', String(Math.ceil((window.resetAt - now) / 1000)));
    reject(res);
  };
}

/** The caller's address: the socket's, or behind one trusted proxy the address that proxy saw (the last X-Forwarded-For entry). */
export function clientIp(trustProxy: boolean): (req: Request) => string {
  return (req) => {
    const forwarded = trustProxy ? req.get('X-Forwarded-For')?.split(',').pop()?.trim() : undefined;
    return forwarded || req.socket.remoteAddress || 'unknown';
  };
}
