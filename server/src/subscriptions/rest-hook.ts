import type { LookupFunction } from 'node:net';
import { Agent, request } from 'undici';

/** Idle kept-alive connections to an endpoint close after this long. */
const IDLE_MS = 30_000;

/** One connection pool per way of resolving names: the endpoint rule's lookup, or the system's. */
const pools = new Map<LookupFunction | undefined, Agent>();
const poolFor = (lookup: LookupFunction | undefined): Agent => {
  let pool = pools.get(lookup);
  if (!pool) {
    pool = new Agent({ keepAliveTimeout: IDLE_MS, connect: lookup ? { lookup } : {} });
    pools.set(lookup, pool);
  }
  return pool;
};

export interface PostOptions {
  /** Aborts the POST (the worker is shutting down). */
  signal: AbortSignal;
  /** The whole exchange's deadline. */
  timeoutMs: number;
  /** Resolves the endpoint's name for new connections (see `publicLookup`). */
  lookup?: LookupFunction;
}

/**
 * POSTs one rest-hook notification over a kept-alive connection and answers the endpoint's status;
 * the response body is read and dropped; a header named twice is sent twice. undici's `request`,
 * not fetch or node:http: fetch's web streams cost the delivery worker about as much CPU as
 * everything else a notification takes, and node:http's client half again what undici's does. The
 * deadline is a timer cleared with the answer, not an `AbortSignal.timeout`, whose timer runs on
 * and builds a DOMException for every notification. Redirects are not followed: a 3xx is a failed
 * delivery.
 */
export async function postNotification(url: URL, headers: [string, string][], body: string, { signal, timeoutMs, lookup }: PostOptions): Promise<number> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`${url.host} did not answer within ${timeoutMs} ms`)), timeoutMs);
  const stop = () => deadline.abort(signal.reason);
  signal.addEventListener('abort', stop, { once: true });
  try {
    signal.throwIfAborted();
    const res = await request(url, { method: 'POST', headers: headers.flat(), body, dispatcher: poolFor(lookup), signal: deadline.signal });
    await res.body.dump();
    return res.statusCode;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
  }
}
