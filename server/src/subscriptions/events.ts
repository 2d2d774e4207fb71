import type { Database } from '../store/database.ts';
import { isoTimestamp } from '../store/database.ts';
import type { Change } from './outbox.ts';

/** A change a subscription matched, with when it was committed. */
export interface SubscriptionEvent {
  timestamp: string;
  focus: Change;
  /** A topic-based subscription's events only: numbered from 1 in commit order (see `numberEvents`). */
  number?: number;
}

/**
 * A topic-based subscription's event, numbered from 1 in commit order, the number kept across
 * retries, re-drains and `$resend`. Classic R4 subscriptions number none: their notification is the
 * bare resource, and numbering cost PostgreSQL more per event than the rest of matching and delivery.
 */
export interface NumberedEvent extends SubscriptionEvent {
  number: number;
}

/**
 * Numbers the events of many subscriptions in one statement, each subscription's in the order
 * given. An event already numbered (a batch matched again after a crash) keeps its number: its key,
 * subscription and focus version, is unique (the `job_id` column, named for when each event was
 * its own delivery job). The matcher alone numbers events, one batch at a time across all
 * workers, so max + rank does not race. An event's timestamp is `at`, when the change was
 * committed (its version's lastUpdated), else the time of numbering.
 */
export async function numberEvents(db: Database, events: readonly { subscriptionId: string; focus: Change; at?: string }[]): Promise<NumberedEvent[]> {
  if (events.length === 0) return [];
  const keys = events.map((e) => eventKey(e.subscriptionId, e.focus));
  const rows = await db.query<{ key: string; n: string; t: string }>(
    `WITH wanted AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[])
         WITH ORDINALITY AS w(subscription_id, key, focus_type, focus_id, focus_version, interaction, at, ord)
     ), known AS (
       SELECT e.job_id AS key, e.event_number, e.created_at FROM subscription_event e JOIN wanted w ON e.job_id = w.key
     ), fresh AS (
       SELECT w.*, row_number() OVER (PARTITION BY w.subscription_id ORDER BY w.ord) AS rank
       FROM wanted w WHERE w.key NOT IN (SELECT key FROM known)
     ), inserted AS (
       INSERT INTO subscription_event (subscription_id, event_number, job_id, focus_type, focus_id, focus_version, interaction, created_at)
       SELECT f.subscription_id,
              coalesce((SELECT max(e.event_number) FROM subscription_event e WHERE e.subscription_id = f.subscription_id), 0) + f.rank,
              f.key, f.focus_type, f.focus_id, f.focus_version, f.interaction, coalesce(f.at, clock_timestamp())
       FROM fresh f ORDER BY f.ord
       RETURNING job_id AS key, event_number, created_at
     )
     SELECT key, event_number::text AS n, created_at::text AS t FROM inserted
     UNION ALL SELECT key, event_number::text, created_at::text FROM known`,
    [
      events.map((e) => e.subscriptionId),
      keys,
      events.map((e) => e.focus.resourceType),
      events.map((e) => e.focus.id),
      events.map((e) => e.focus.versionId),
      events.map((e) => e.focus.interaction),
      events.map((e) => e.at ?? null),
    ],
  );
  const byKey = new Map(rows.map((row) => [row.key, row]));
  return events.map((e, i) => {
    const row = byKey.get(keys[i]) as { n: string; t: string };
    return { number: Number(row.n), timestamp: isoTimestamp(row.t), focus: e.focus };
  });
}

/** Events since the subscription started (its highest number): handshakes and heartbeats do not count. */
export async function eventCount(db: Database, subscriptionId: string): Promise<number> {
  const [row] = await db.query<{ n: string }>('SELECT coalesce(max(event_number), 0)::text AS n FROM subscription_event WHERE subscription_id = $1', [subscriptionId]);
  return Number(row.n);
}

const eventKey = (subscriptionId: string, f: Change): string => `${subscriptionId}/${f.resourceType}/${f.id}/${f.versionId}`;
