import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';

/** Idle kept-alive connections to an endpoint close after this long. */
const IDLE_MS = 30_000;
const http = new HttpAgent({ keepAlive: true, timeout: IDLE_MS });
const https = new HttpsAgent({ keepAlive: true, timeout: IDLE_MS });

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
 * the response body is read and dropped. node:http rather than fetch: fetch's web streams, and the
 * AbortError it builds to discard each unread body, cost the delivery worker about as much CPU as
 * everything else a notification takes. The deadline is a timer cleared with the answer, not an
 * `AbortSignal.timeout`, whose timer runs on and builds a DOMException for every notification.
 * Redirects are not followed: a 3xx is a failed delivery.
 */
export function postNotification(url: URL, headers: [string, string][], body: string, { signal, timeoutMs, lookup }: PostOptions): Promise<number> {
  const secure = url.protocol === 'https:';
  const fields: Record<string, string | string[]> = { 'content-length': String(Buffer.byteLength(body)) };
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    const seen = fields[key];
    fields[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return new Promise<number>((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(url, { method: 'POST', headers: fields, agent: secure ? https : http, signal, lookup }, (res) => {
      res.on('error', reject);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.resume();
    });
    const timer = setTimeout(() => req.destroy(new Error(`${url.host} did not answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(body);
  });
}
