import type { Resource, Subscription } from '@medplum/fhirtypes';
import type { DeadLetter, JobContext } from '../jobs/queue.ts';
import type { Logger } from '../ops/logger.ts';
import { quote } from '../store/columns.ts';
import { isoTimestamp } from '../store/database.ts';
import type { Repository } from '../store/repository.ts';
import { historyTable } from '../store/schema.ts';
import type { SubscriptionConfig } from './config.ts';
import { assertPublicHost } from './endpoint.ts';
import type { Hub } from './hub.ts';
import { notificationBundle, type NotificationEvent } from './notification.ts';
import type { Change } from './outbox.ts';
import { parseSubscription, type ParsedSubscription } from './parse.ts';
import { setStatus } from './status.ts';

export interface Delivery {
  subscriptionId: string;
  /** `handshake` activates a `requested` topic rest-hook once its endpoint accepts one. */
  kind: 'handshake' | 'event' | 'heartbeat';
  focus?: Change;
  /** An event already numbered and sent once, queued again by `$resend`. */
  resend?: { number: number; timestamp: string };
}

/** A recorded event of a subscription, for `$resend`. */
export interface ResentEvent {
  number: number;
  timestamp: string;
  focus: Change;
}

export interface Notification {
  body: string;
  contentType?: string;
}

/**
 * Sends one notification: a handshake, an event (numbered on its first attempt, the number kept
 * across retries and resends) or a heartbeat. The subscription is re-read first, so `off`, `end`
 * and deletion stop deliveries already queued. Failures throw, for the queue to retry with backoff.
 */
export class Deliverer {
  readonly #repo: Repository;
  readonly #config: SubscriptionConfig;
  readonly #hub: Hub;
  readonly #fhirBase: string;
  readonly #logger: Logger;

  constructor(repo: Repository, config: SubscriptionConfig, hub: Hub, fhirBase: string, logger: Logger) {
    this.#repo = repo;
    this.#config = config;
    this.#hub = hub;
    this.#fhirBase = fhirBase;
    this.#logger = logger;
  }

  handle = async (job: JobContext<Delivery>): Promise<void> => {
    const resource = await this.#current(job.data.subscriptionId);
    if (job.data.kind === 'handshake') return this.#handshake(resource, job.signal);
    if (!resource || resource.status !== 'active' || (resource.end && Date.parse(resource.end) <= Date.now())) return;
    const sub = parseSubscription(resource, this.#config.allowPrivateEndpoints);
    const notification = job.data.kind === 'event' && job.data.focus
      ? await this.#event(sub, job.data.focus, job.data.resend ?? (await this.#number(sub.id, job.id, job.data.focus)), job.data.resend !== undefined)
      : await this.#heartbeat(sub);
    if (!notification) return;
    await this.#send(sub, notification, job.signal);
    if (sub.heartbeatSeconds) {
      await this.#repo.db.query('UPDATE subscription_heartbeat SET last_sent_at = now() WHERE subscription_id = $1', [sub.id]);
    }
  };

  /** After the last attempt: the subscription goes to `error`, saying why. */
  onDeadLetter = (dead: DeadLetter<Delivery>): void => {
    const handshake = dead.data.kind === 'handshake';
    const reason = `${handshake ? 'Handshake' : 'Notification delivery'} failed after ${dead.attempts} attempts: ${dead.error}`;
    setStatus(this.#repo, dead.data.subscriptionId, 'error', reason, [handshake ? 'requested' : 'active']).catch((err: Error) =>
      this.#logger.error({ err, subscription: dead.data.subscriptionId }, 'could not record the subscription error'),
    );
  };

  async #send(sub: ParsedSubscription, notification: Notification, signal: AbortSignal): Promise<void> {
    if (sub.channel.type === 'websocket') {
      await this.#hub.publish({ subscriptionId: sub.id, ping: `ping ${sub.id}`, payload: notification.contentType ? notification.body : undefined });
      return;
    }
    const url = new URL(sub.channel.endpoint as string);
    await assertPublicHost(url, this.#config.allowPrivateEndpoints);
    const headers = new Headers(sub.channel.headers);
    if (notification.contentType) headers.set('content-type', notification.contentType);
    const timeout = Math.min(sub.timeoutMs ?? Infinity, this.#config.timeoutMs);
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body: notification.body,
      redirect: 'error',
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeout)]),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`${url.host} answered ${res.status}`);
  }

  /** A `requested` subscription becomes `active` once its endpoint took the handshake; a failure throws, to be retried. */
  async #handshake(resource: Subscription | undefined, signal: AbortSignal): Promise<void> {
    if (resource?.status !== 'requested') return;
    const sub = parseSubscription(resource, this.#config.allowPrivateEndpoints);
    const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'handshake', eventsSinceStart: 0 });
    await this.#send(sub, { body: JSON.stringify(bundle), contentType: sub.channel.payload }, signal);
    await setStatus(this.#repo, sub.id, 'active', undefined, ['requested']);
  }

  async #event(sub: ParsedSubscription, focus: Change, { number, timestamp }: { number: number; timestamp: string }, resent: boolean): Promise<Notification> {
    const content = focus.interaction === 'delete' ? undefined : await this.#version(focus);
    if (!sub.topic) {
      // classic R4: the resource itself when a payload is asked for, otherwise an empty POST
      return sub.channel.payload ? { body: content ?? '', contentType: sub.channel.payload } : { body: '' };
    }
    const event: NotificationEvent = { number, timestamp, focus, resource: content ? (JSON.parse(content) as Resource) : undefined };
    // a resent event keeps its number; the count is today's
    const eventsSinceStart = resent ? await this.#eventCount(sub.id) : number;
    const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'event-notification', eventsSinceStart, events: [event] });
    return { body: JSON.stringify(bundle), contentType: sub.channel.payload };
  }

  async #heartbeat(sub: ParsedSubscription): Promise<Notification | undefined> {
    if (!sub.topic) return undefined;
    const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'heartbeat', eventsSinceStart: await this.#eventCount(sub.id) });
    return { body: JSON.stringify(bundle), contentType: sub.channel.payload };
  }

  async #eventCount(subscriptionId: string): Promise<number> {
    const [row] = await this.#repo.db.query<{ n: string }>(
      'SELECT coalesce(max(event_number), 0)::text AS n FROM subscription_event WHERE subscription_id = $1',
      [subscriptionId],
    );
    return Number(row.n);
  }

  /** The event's number: assigned once per job, so a retry re-sends the same number. */
  async #number(subscriptionId: string, jobId: string, focus: Change): Promise<{ number: number; timestamp: string }> {
    const select = 'SELECT event_number::text AS n, created_at::text AS t FROM subscription_event WHERE job_id = $1';
    let [row] = await this.#repo.db.query<{ n: string; t: string }>(select, [jobId]);
    if (!row) {
      // deliveries of one subscription run one at a time (its group), so max + 1 does not race
      [row] = await this.#repo.db.query<{ n: string; t: string }>(
        `INSERT INTO subscription_event (subscription_id, event_number, job_id, focus_type, focus_id, focus_version, interaction)
         SELECT $1, coalesce(max(event_number), 0) + 1, $2, $3, $4, $5, $6 FROM subscription_event WHERE subscription_id = $1
         RETURNING event_number::text AS n, created_at::text AS t`,
        [subscriptionId, jobId, focus.resourceType, focus.id, focus.versionId, focus.interaction],
      );
    }
    return { number: Number(row.n), timestamp: isoTimestamp(row.t) };
  }

  async #version(focus: Change): Promise<string | undefined> {
    const rows = await this.#repo.db.query<{ content: string | null }>(
      `SELECT content FROM ${quote(historyTable(focus.resourceType))} WHERE id = $1 AND version_id = $2`,
      [focus.id, focus.versionId],
    );
    return rows[0]?.content ?? undefined;
  }

  async #current(id: string): Promise<Subscription | undefined> {
    const rows = await this.#repo.db.query<{ content: string }>('SELECT content FROM "Subscription" WHERE id = $1 AND NOT deleted', [id]);
    return rows[0] ? (JSON.parse(rows[0].content) as Subscription) : undefined;
  }
}
