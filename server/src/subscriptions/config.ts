import type { Backoff } from '../jobs/queue.ts';

/** Subscription delivery settings, from the environment (see README, "Subscriptions"). */
export interface SubscriptionConfig {
  /** SSRF protection is lifted for loopback/private endpoints only when this is set (tests, closed networks). */
  allowPrivateEndpoints: boolean;
  /** Delivery attempts before the subscription is set to `error`. */
  attempts: number;
  /** Handshake attempts (same backoff) before a `requested` topic subscription goes to `error`. */
  handshakeAttempts: number;
  backoff: Backoff;
  /** Per-attempt HTTP timeout; a Subscription's `backport-timeout` may only shorten it. */
  timeoutMs: number;
  /**
   * Deliveries in flight per worker process: slow endpoints hold one slot each, never the write path.
   * A worker delivers at most this many per delivery's round trip (queue, lookups, POST: ~16 ms on a
   * loaded 2-core machine), so 32 capped it near 1,800 notifications/s, below a busy ward's writes.
   */
  concurrency: number;
  /** Redis key prefix of the queues and websocket fan-out channel. */
  queuePrefix: string;
  /** How often the outbox is polled for other replicas' writes, beside the in-process wake-up. */
  pollMs: number;
}

export function loadSubscriptionConfig(env: NodeJS.ProcessEnv): SubscriptionConfig {
  const baseMs = positive(env.VIGIL_SUBSCRIPTION_BACKOFF_MS, 1_000, 'VIGIL_SUBSCRIPTION_BACKOFF_MS');
  const capMs = positive(env.VIGIL_SUBSCRIPTION_BACKOFF_CAP_MS, 24 * 60 * 60 * 1_000, 'VIGIL_SUBSCRIPTION_BACKOFF_CAP_MS');
  if (capMs < baseMs) throw new Error('VIGIL_SUBSCRIPTION_BACKOFF_CAP_MS must be >= VIGIL_SUBSCRIPTION_BACKOFF_MS');
  return {
    allowPrivateEndpoints: env.VIGIL_ALLOW_PRIVATE_ENDPOINTS === 'true',
    attempts: positive(env.VIGIL_SUBSCRIPTION_ATTEMPTS, 20, 'VIGIL_SUBSCRIPTION_ATTEMPTS'),
    handshakeAttempts: positive(env.VIGIL_SUBSCRIPTION_HANDSHAKE_ATTEMPTS, 5, 'VIGIL_SUBSCRIPTION_HANDSHAKE_ATTEMPTS'),
    backoff: { baseMs, capMs },
    timeoutMs: positive(env.VIGIL_SUBSCRIPTION_TIMEOUT_MS, 10_000, 'VIGIL_SUBSCRIPTION_TIMEOUT_MS'),
    concurrency: positive(env.VIGIL_SUBSCRIPTION_CONCURRENCY, 128, 'VIGIL_SUBSCRIPTION_CONCURRENCY'),
    queuePrefix: env.VIGIL_QUEUE_PREFIX || 'vigil',
    pollMs: positive(env.VIGIL_OUTBOX_POLL_MS, 1_000, 'VIGIL_OUTBOX_POLL_MS'),
  };
}

function positive(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not "${value}"`);
  return n;
}
