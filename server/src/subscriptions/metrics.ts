import { Counter, Histogram, type Registry } from 'prom-client';
import { backlogGauge } from '../ops/metrics.ts';
import type { Database } from '../store/database.ts';
import type { Delivery } from './delivery.ts';

/** What the deliverer reports of each notification it sends or fails to send. */
export interface DeliveryMetrics {
  /** A notification sent; `committed` holds the commit times of the events it carried (none for a handshake or heartbeat, or a resend). */
  sent(channel: string, kind: Delivery['kind'], committed: readonly string[]): void;
  /** An attempt that failed: the queue retries it, or dead-letters it after the last. */
  failed(channel: string, kind: Delivery['kind']): void;
  /** A delivery given up after its last attempt (its subscription goes to `error`). */
  dead(kind: Delivery['kind']): void;
}

/**
 * The delivery side of the subscription engine on /metrics, for the worker replicas that run it:
 * `vigil_subscription_notifications_total{channel,kind,outcome}` (sent or failed attempts),
 * `vigil_subscription_notification_latency_seconds{channel}` (an event's commit → its notification
 * sent), `vigil_subscription_deliveries_dead_total{kind}`, and two backlogs read at scrape time:
 * `vigil_subscription_deliveries_pending` (deliveries queued or running) and `vigil_outbox_changes`
 * (committed changes not yet taken from the outbox for matching and bots).
 */
export function deliveryMetrics(registry: Registry, pending: () => Promise<number>, db: Database): DeliveryMetrics {
  const notifications = new Counter({
    name: 'vigil_subscription_notifications_total',
    help: 'Subscription notifications by channel, kind (event, handshake, heartbeat) and outcome (sent, failed: an attempt that failed)',
    labelNames: ['channel', 'kind', 'outcome'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'vigil_subscription_notification_latency_seconds',
    help: "From an event's commit to its notification sent",
    labelNames: ['channel'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const dead = new Counter({ name: 'vigil_subscription_deliveries_dead_total', help: 'Deliveries given up after their last attempt', labelNames: ['kind'], registers: [registry] });
  backlogGauge(registry, 'vigil_subscription_deliveries_pending', 'Subscription deliveries queued or running', pending);
  backlogGauge(registry, 'vigil_outbox_changes', 'Committed changes not yet taken from the outbox', async () => {
    const [row] = await db.query<{ n: string }>('SELECT count(*) AS n FROM change_outbox');
    return Number(row.n);
  });
  return {
    sent(channel, kind, committed) {
      notifications.inc({ channel, kind, outcome: 'sent' });
      const now = Date.now();
      for (const at of committed) latency.observe({ channel }, Math.max(0, now - Date.parse(at)) / 1000);
    },
    failed(channel, kind) {
      notifications.inc({ channel, kind, outcome: 'failed' });
    },
    dead(kind) {
      dead.inc({ kind });
    },
  };
}
