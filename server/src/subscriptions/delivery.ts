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
  kind: 'event' | 'heartbeat';
  focus?: Change;
}

export interface Notification {
  body: string;
  contentType?: string;
}

/**
 * Sends one notification: an event (numbered on its first attempt, the number kept across
 * retries) or a heartbeat. The subscription is re-read first, so `off`, `end` and deletion stop
 * deliveries already queued. Failures throw, for the queue to retry with backoff.
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
    if (!resource || resource.status !== 'active' || (resource.end && Date.parse(resource.end) <= Date.now())) return;
    const sub = parseSubscription(resource, this.#config.allowPrivateEndpoints);
    const notification = job.data.kind === 'event' && job.data.focus
      ? await this.#event(sub, job.id, job.data.focus)
      : await this.#heartbeat(sub);
    if (!notification) return;
    await this.send(sub, notification, job.signal);
    if (sub.heartbeatSeconds) {
      await this.#repo.db.query('UPDATE subscription_heartbeat SET last_sent_at = now() WHERE subscription_id = $1', [sub.id]);
    }
  };

  /** After the last attempt: the subscription goes to `error`, saying why. */
  onDeadLetter = (dead: DeadLetter<Delivery>): void => {
    const reason = `Notification delivery failed after ${dead.attempts} attempts: ${dead.error}`;
    setStatus(this.#repo, dead.data.subscriptionId, 'error', reason, ['active']).catch((err: Error) =>
      this.#logger.error({ err, subscription: dead.data.subscriptionId }, 'could not record the subscription error'),
    );
  };

  async send(sub: ParsedSubscription, notification: Notification, signal: AbortSignal): Promise<void> {
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

  async #event(sub: ParsedSubscription, jobId: string, focus: Change): Promise<Notification> {
    const { number, timestamp } = await this.#number(sub.id, jobId, focus);
    const content = focus.interaction === 'delete' ? undefined : await this.#version(focus);
    if (!sub.topic) {
      // classic R4: the resource itself when a payload is asked for, otherwise an empty POST
      return sub.channel.payload ? { body: content ?? '', contentType: sub.channel.payload } : { body: '' };
    }
    const event: NotificationEvent = { number, timestamp, focus, resource: content ? (JSON.parse(content) as Resource) : undefined };
    const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'event-notification', eventsSinceStart: number, events: [event] });
    return { body: JSON.stringify(bundle), contentType: sub.channel.payload };
  }

  async #heartbeat(sub: ParsedSubscription): Promise<Notification | undefined> {
    if (!sub.topic) return undefined;
    const [row] = await this.#repo.db.query<{ n: string }>(
      'SELECT coalesce(max(event_number), 0)::text AS n FROM subscription_event WHERE subscription_id = $1',
      [sub.id],
    );
    const bundle = notificationBundle({ sub, fhirBase: this.#fhirBase, type: 'heartbeat', eventsSinceStart: Number(row.n) });
    return { body: JSON.stringify(bundle), contentType: sub.channel.payload };
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
