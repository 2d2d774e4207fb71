import type { Resource, Subscription } from '@medplum/fhirtypes';
import type { DeadLetter, JobContext } from '../jobs/queue.ts';
import type { Logger } from '../ops/logger.ts';
import { quote } from '../store/columns.ts';
import type { Repository } from '../store/repository.ts';
import { historyTable } from '../store/schema.ts';
import type { SubscriptionConfig } from './config.ts';
import { checkEndpoint, publicLookup } from './endpoint.ts';
import type { Hub } from './hub.ts';
import { eventCount, type NumberedEvent, type SubscriptionEvent } from './events.ts';
import { notificationBundle } from './notification.ts';
import type { Change } from './outbox.ts';
import { parseSubscription, type ParsedSubscription } from './parse.ts';
import type { DeliveryMetrics } from './metrics.ts';
import { postNotification } from './rest-hook.ts';
import type { SubscriptionRegistry } from './registry.ts';
import { setStatus } from './status.ts';

export interface Delivery {
  subscriptionId: string;
  /** `handshake` activates a `requested` topic rest-hook once its endpoint accepts one. */
  kind: 'handshake' | 'event' | 'heartbeat';
  /** The events of an `event` delivery, in order, numbered when matched. */
  events?: DeliveryEvent[];
  /** Queued again by `$resend`: the events keep their numbers, the count is today's. */
  resent?: boolean;
  /** Attempts already made before this job was queued (a fan-out's first one, fan-out.ts). */
  attempted?: number;
}

/**
 * The focus version's stored JSON comes along when the matcher had it and the channel sends it
 * (small resources only); otherwise it is read. As text, it is a classic notification's body as it is.
 */
export interface DeliveryEvent extends SubscriptionEvent {
  content?: string;
}

export interface Notification {
  body: string;
  contentType?: string;
  /** When the events it carries were committed (for the latency metric; none for a resend). */
  committed?: string[];
}

/** Whether the subscription's notifications carry the focus resources. */
export const sendsResources = (sub: ParsedSubscription): boolean => sub.channel.content === 'full-resource';

/**
 * Sends one delivery's notifications: a handshake, a heartbeat, or events. A classic R4
 * subscription gets one POST per event; a topic-based one gets its events in one history Bundle
 * (`backport-max-count` at most). The subscription is looked up first (in the registry, refreshed
 * at most every second, otherwise in the database), so `off`, `end` and deletion stop deliveries
 * already queued. Failures throw, for the queue to retry the whole delivery with backoff.
 */
export class Deliverer {
  readonly #repo: Repository;
  readonly #registry: SubscriptionRegistry;
  readonly #config: SubscriptionConfig;
  readonly #hub: Hub;
  readonly #fhirBase: string;
  readonly #logger: Logger;
  readonly #metrics: DeliveryMetrics;

  constructor(repo: Repository, registry: SubscriptionRegistry, config: SubscriptionConfig, hub: Hub, fhirBase: string, logger: Logger, metrics: DeliveryMetrics) {
    this.#repo = repo;
    this.#registry = registry;
    this.#config = config;
    this.#hub = hub;
    this.#fhirBase = fhirBase;
    this.#logger = logger;
    this.#metrics = metrics;
  }

  handle = (job: JobContext<Delivery>): Promise<void> => this.deliver(job.data, job.signal);

  /** One delivery; `timeoutMs` shortens the per-POST deadline (a fan-out's first attempt). Throws when it failed. */
  async deliver(delivery: Delivery, signal: AbortSignal, timeoutMs = Infinity): Promise<void> {
    const { subscriptionId, kind, events = [], resent = false } = delivery;
    if (kind === 'handshake') return this.#handshake(await this.#stored(subscriptionId), signal);
    const sub = await this.#active(subscriptionId);
    if (!sub) return;
    const notifications = kind === 'event' ? await this.#events(sub, events, resent) : await this.#heartbeat(sub);
    for (const notification of notifications) await this.#send(sub, notification, kind, signal, timeoutMs);
    if (notifications.length && sub.heartbeatSeconds) {
      await this.#repo.db.query('UPDATE subscription_heartbeat SET last_sent_at = now() WHERE subscription_id = $1', [sub.id]);
    }
  }

  /** After the last attempt: the subscription goes to `error`, saying why. */
  onDeadLetter = (dead: DeadLetter<Delivery>): void => {
    this.#metrics.dead(dead.data.kind);
    const handshake = dead.data.kind === 'handshake';
    const attempts = dead.attempts + (dead.data.attempted ?? 0);
    const reason = `${handshake ? 'Handshake' : 'Notification delivery'} failed after ${attempts} attempts: ${dead.error}`;
    setStatus(this.#repo, dead.data.subscriptionId, 'error', reason, [handshake ? 'requested' : 'active']).catch((err: Error) =>
      this.#logger.error({ err, subscription: dead.data.subscriptionId }, 'could not record the subscription error'),
    );
  };

  async #send(sub: ParsedSubscription, notification: Notification, kind: Delivery['kind'], signal: AbortSignal, timeoutMs = Infinity): Promise<void> {
    try {
      await this.#transmit(sub, notification, signal, timeoutMs);
    } catch (err) {
      this.#metrics.failed(sub.channel.type, kind);
      throw err;
    }
    this.#metrics.sent(sub.channel.type, kind, notification.committed ?? []);
  }

  async #transmit(sub: ParsedSubscription, notification: Notification, signal: AbortSignal, capMs: number): Promise<void> {
    if (sub.channel.type === 'websocket') {
      await this.#hub.publish({ subscriptionId: sub.id, ping: `ping ${sub.id}`, payload: notification.contentType ? notification.body : undefined });
      return;
    }
    // the create-time rule again (the setting may have changed since): a connection to an IP literal looks nothing up
    const url = checkEndpoint(sub.channel.endpoint, this.#config.allowPrivateEndpoints);
    const headers = sub.channel.headers.filter(([name]) => !notification.contentType || name.toLowerCase() !== 'content-type');
    if (notification.contentType) headers.push(['content-type', notification.contentType]);
    const timeoutMs = Math.min(sub.timeoutMs ?? Infinity, this.#config.timeoutMs, capMs);
    const lookup = this.#config.allowPrivateEndpoints ? undefined : publicLookup;
    const status = await postNotification(url, headers, notification.body, { signal, timeoutMs, lookup });
    if (status < 200 || status > 299) throw new Error(`${url.host} answered ${status}`);
  }

  /** A `requested` subscription becomes `active` once its endpoint took the handshake; a failure throws, to be retried. */
  async #handshake(resource: Subscription | undefined, signal: AbortSignal): Promise<void> {
    if (resource?.status !== 'requested') return;
    const sub = parseSubscription(resource, this.#config.allowPrivateEndpoints);
    const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'handshake', eventsSinceStart: 0 });
    await this.#send(sub, { body: JSON.stringify(bundle), contentType: sub.channel.payload }, 'handshake', signal);
    await setStatus(this.#repo, sub.id, 'active', undefined, ['requested']);
  }

  async #events(sub: ParsedSubscription, events: DeliveryEvent[], resent: boolean): Promise<Notification[]> {
    const withContent = sendsResources(sub)
      ? await Promise.all(events.map(async (e) => ({ ...e, content: e.content ?? (await this.#version(e.focus)) })))
      : events;
    if (!sub.topic) {
      // classic R4: the resource itself when a payload is asked for, otherwise an empty POST
      return withContent.map((e) => ({
        ...(sub.channel.payload ? { body: e.content ?? '', contentType: sub.channel.payload } : { body: '' }),
        committed: resent ? [] : [e.timestamp],
      }));
    }
    const count = resent ? await eventCount(this.#repo.db, sub.id) : undefined;
    // a topic-based subscription's events were numbered when matched
    const numbered = withContent.map((e) => ({ ...(e as NumberedEvent), resource: e.content ? (JSON.parse(e.content) as Resource) : undefined }));
    const notifications: Notification[] = [];
    const size = sub.maxCount ?? numbered.length;
    for (let i = 0; i < numbered.length; i += size) {
      const chunk = numbered.slice(i, i + size);
      const eventsSinceStart = count ?? chunk[chunk.length - 1].number;
      const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'event-notification', eventsSinceStart, events: chunk });
      notifications.push({ body: JSON.stringify(bundle), contentType: sub.channel.payload, committed: resent ? [] : chunk.map((e) => e.timestamp) });
    }
    return notifications;
  }

  async #heartbeat(sub: ParsedSubscription): Promise<Notification[]> {
    if (!sub.topic) return [];
    const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'heartbeat', eventsSinceStart: await eventCount(this.#repo.db, sub.id) });
    return [{ body: JSON.stringify(bundle), contentType: sub.channel.payload }];
  }

  /** The focus version's stored JSON, none for a deletion. */
  async #version(focus: Change): Promise<string | undefined> {
    if (focus.interaction === 'delete') return undefined;
    const rows = await this.#repo.db.query<{ content: string | null }>(
      `SELECT content FROM ${quote(historyTable(focus.resourceType))} WHERE id = $1 AND version_id = $2`,
      [focus.id, focus.versionId],
    );
    return rows[0]?.content ?? undefined;
  }

  async #active(id: string): Promise<ParsedSubscription | undefined> {
    await this.#registry.refresh();
    const known = this.#registry.get(id);
    if (known) return known.end !== undefined && known.end <= Date.now() ? undefined : known;
    // activated since this replica's last refresh, or no longer active
    const resource = await this.#stored(id);
    if (resource?.status !== 'active' || (resource.end && Date.parse(resource.end) <= Date.now())) return undefined;
    return parseSubscription(resource, this.#config.allowPrivateEndpoints);
  }

  async #stored(id: string): Promise<Subscription | undefined> {
    const rows = await this.#repo.db.query<{ content: string }>('SELECT content FROM "Subscription" WHERE id = $1 AND NOT deleted', [id]);
    return rows[0] ? (JSON.parse(rows[0].content) as Subscription) : undefined;
  }
}
