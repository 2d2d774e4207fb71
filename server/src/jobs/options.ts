import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backoff, EnqueueOptions } from './queue.ts';

export const DEFAULT_ATTEMPTS = 5;
export const DEFAULT_BACKOFF: Backoff = { baseMs: 1_000, capMs: 60 * 60 * 1_000 };
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

export interface ResolvedOptions {
  jobId: string;
  delayMs: number;
  attempts: number;
  backoff: Backoff;
  groupKey?: string;
}

export function resolveOptions(options: EnqueueOptions): ResolvedOptions {
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  const delayMs = options.delayMs ?? 0;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  if (!Number.isInteger(attempts) || attempts < 1) throw new Error(`attempts must be a positive integer, not ${attempts}`);
  if (!(delayMs >= 0)) throw new Error(`delayMs must be >= 0, not ${delayMs}`);
  if (!(backoff.baseMs > 0 && backoff.capMs >= backoff.baseMs)) {
    throw new Error(`backoff needs 0 < baseMs <= capMs, not ${backoff.baseMs}/${backoff.capMs}`);
  }
  return { jobId: options.jobId ?? randomUUID(), delayMs, attempts, backoff, groupKey: options.groupKey };
}

/** A schedule's period, checked like the other options. */
export function checkPeriod(everyMs: number): number {
  if (!Number.isInteger(everyMs) || everyMs < 1) throw new Error(`everyMs must be a positive integer, not ${everyMs}`);
  return everyMs;
}

/**
 * Delay before the retry that follows failed attempt number `attempt` (1-based).
 * "Equal jitter": half the exponential step is kept so retries never collapse to zero,
 * the other half is random so failing jobs enqueued together do not retry in lockstep.
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const step = Math.min(backoff.capMs, backoff.baseMs * 2 ** (attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/** Handlers and callbacks may throw anything. */
export function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** True if the promise settles within ms; the timer is cleared either way so it never holds the process open. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  const settled = promise.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([settled, sleep(ms, false, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}
