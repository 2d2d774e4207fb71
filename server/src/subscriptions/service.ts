import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { Basic } from '@medplum/fhirtypes';
import type { Registry } from 'prom-client';
import { CareTeamPatients } from '../auth/care-team.ts';
import type { Config } from '../config.ts';
import type { JobQueue, QueueFactory } from '../jobs/queue.ts';
import type { Logger } from '../ops/logger.ts';
import type { SecurityEvent } from '../ops/security-audit.ts';
import type { ChangeFeed } from '../store/events.ts';
import type { Repository } from '../store/repository.ts';
import { Deliverer, type Delivery } from './delivery.ts';
import type { NumberedEvent } from './events.ts';
import { FAN_OUT_SHARDS, FanOutHandler, type FanOut } from './fan-out.ts';
import { createHub, type Hub } from './hub.ts';
import { Matcher } from './matcher.ts';
import { deliveryMetrics } from './metrics.ts';
import { OutboxDrainer, type ChangeBatch } from './outbox.ts';
import { SubscriptionRegistry } from './registry.ts';
import { setStatus } from './status.ts';
import { getTopics } from './topics.ts';
import { WebsocketChannel } from './websocket.ts';

export interface SubscriptionService {
  registry: SubscriptionRegistry;
  drainer?: OutboxDrainer;
  deliveries: JobQueue<Delivery>;
  /** Queues recorded events again (`$resend`), behind the subscription's pending notifications. */
  resend(subscriptionId: string, events: NumberedEvent[]): Promise<void>;
  stop(): Promise<void>;
}

export interface SubscriptionParts {
  config: Config;
  repo: Repository;
  feed: ChangeFeed;
  queues: QueueFactory;
  server: Server;
  logger: Logger;
  /** Records security events (websocket connections and bindings). */
  audit: (event: SecurityEvent) => void;
  /** Where the delivery metrics are registered (`/metrics`). */
  registry: Registry;
  /** Further queues that get every batch of committed changes the workers take from the outbox (the bots'). */
  feeds?: readonly JobQueue<ChangeBatch>[];
}

const TICK_MS = 1_000;

/**
 * Starts the subscription engine. Workers (roles all, worker) drain the outbox, match, deliver,
 * send heartbeats and end expired subscriptions; API replicas (roles all, api) hold websockets.
 */
export async function startSubscriptions({ config, repo, feed, queues, server, logger, audit, registry: metricsRegistry, feeds = [] }: SubscriptionParts): Promise<SubscriptionService> {
  const settings = config.subscriptions;
  const onError = (err: Error) => logger.error({ err }, 'subscription engine error');
  const hub: Hub = createHub(config.redisUrl, settings.queuePrefix, onError);
  const fhirBase = `${config.baseUrl}/fhir/R4`;
  const registry = new SubscriptionRegistry(repo.db, config.baseUrl, settings.allowPrivateEndpoints);
  const deliveries = queues.queue<Delivery>('subscription-delivery');
  // a fan-out job waits seconds for its shard: a crash must not leave the next one asleep for minutes
  const fanOut = queues.queue<FanOut>('subscription-fan-out', { groupRecheckMs: 5_000 });
  const stops: (() => Promise<void>)[] = [];
  let drainer: OutboxDrainer | undefined;

  if (config.role === 'api') {
    // the workers drain the outbox: they learn of this replica's commits at once, not at their next poll
    const unsubscribe = feed.subscribe(() => hub.committed());
    stops.push(async () => unsubscribe());
  }
  if (config.role !== 'worker') {
    const websockets = new WebsocketChannel({ server, hub, db: repo.db, fhirBase, logger, audit, trustProxy: config.trustProxy });
    stops.push(() => websockets.close());
  }
  if (config.role !== 'api') {
    await installTopics(repo);
    const pending = async () => (await deliveries.pending()) + (await fanOut.pending());
    const deliverer = new Deliverer(repo, registry, settings, hub, fhirBase, logger, deliveryMetrics(metricsRegistry, pending, repo.db));
    // A drainer that dies between claiming its batch's place and adding the job leaves a head that
    // never comes: the rows go back to the outbox and are drained again as another batch (another
    // id), which must not wait the default 5 min behind it.
    const changes = queues.queue<ChangeBatch>('subscription-match', { groupRecheckMs: 5_000 });
    const matcher = new Matcher(repo, registry, deliveries, fanOut, settings, new CareTeamPatients(repo.db, config.baseUrl));
    // batches one at a time across all workers (one group), each matched concurrently: deliveries follow commit order
    changes.process(matcher.handle, { concurrency: 1 });
    const fanOutHandler = new FanOutHandler(deliverer, deliveries, settings, logger);
    fanOut.process(fanOutHandler.handle, { concurrency: FAN_OUT_SHARDS, onDeadLetter: fanOutHandler.onDeadLetter });
    deliveries.process(deliverer.handle, { concurrency: settings.concurrency, onDeadLetter: deliverer.onDeadLetter });
    const targets = [{ queue: changes, groupKey: 'changes' }, ...feeds.map((queue) => ({ queue }))];
    drainer = new OutboxDrainer(repo.db, feed, targets, { pollMs: settings.pollMs, onError });
    const d = drainer;
    hub.onCommitted(() => d.wake());
    const ticker = setInterval(() => tick(repo, registry, deliveries, settings.attempts).catch(onError), TICK_MS);
    stops.push(async () => {
      clearInterval(ticker);
      await d.stop();
    });
  }
  return {
    registry,
    drainer,
    deliveries,
    async resend(subscriptionId, events) {
      if (events.length === 0) return;
      await deliveries.enqueue(
        { subscriptionId, kind: 'event', events, resent: true },
        { jobId: `${subscriptionId}/resend/${randomUUID()}`, groupKey: subscriptionId, attempts: settings.attempts, backoff: settings.backoff },
      );
    },
    async stop() {
      for (const stop of stops) await stop();
      await hub.close();
    },
  };
}

/**
 * Heartbeats for idle topic subscriptions (claimed atomically, so one replica sends each), `end`,
 * and `error` for active subscriptions that cannot be served, rather than matching nothing unseen.
 */
async function tick(repo: Repository, registry: SubscriptionRegistry, deliveries: JobQueue<Delivery>, attempts: number): Promise<void> {
  await registry.refresh();
  const now = Date.now();
  for (const sub of registry.active) {
    if (sub.end !== undefined && sub.end <= now) {
      await setStatus(repo, sub.id, 'off', undefined, ['active']);
      registry.invalidate();
    }
  }
  for (const [id, reason] of registry.invalid) {
    await setStatus(repo, id, 'error', reason, ['active']);
    registry.invalidate();
  }
  const beating = registry.active.filter((s) => s.heartbeatSeconds && s.topic);
  if (beating.length === 0) return;
  const ids = beating.map((s) => s.id);
  await repo.db.query(
    'INSERT INTO subscription_heartbeat (subscription_id, last_sent_at) SELECT unnest($1::text[]), now() ON CONFLICT (subscription_id) DO NOTHING',
    [ids],
  );
  const due = await repo.db.query<{ subscription_id: string }>(
    `UPDATE subscription_heartbeat h SET last_sent_at = now() FROM unnest($1::text[], $2::int[]) AS x(id, secs)
     WHERE h.subscription_id = x.id AND h.last_sent_at <= now() - x.secs * interval '1 second' RETURNING h.subscription_id`,
    [ids, beating.map((s) => s.heartbeatSeconds)],
  );
  await deliveries.enqueueMany(due.map(({ subscription_id: id }) => ({
    data: { subscriptionId: id, kind: 'heartbeat' as const },
    options: { jobId: `${id}/heartbeat/${now}`, groupKey: id, attempts: Math.min(attempts, 3) },
  })));
}

/** The shipped topics as Basic resources, so that `GET /Basic?code=…|SubscriptionTopic` finds them; rewritten only when changed. */
async function installTopics(repo: Repository): Promise<void> {
  for (const topic of getTopics().values()) {
    const wanted = topic.basic;
    const existing = await repo.read<Basic>('Basic', wanted.id as string).catch(() => undefined);
    if (existing && JSON.stringify({ ...existing, meta: wanted.meta }) === JSON.stringify({ ...wanted, meta: wanted.meta })) continue;
    await repo.update(wanted).catch(() => undefined);
  }
}
