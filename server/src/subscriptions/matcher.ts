import { evalFhirPathTyped, matchesSearchRequest, parseSearchRequest, toTypedValue } from '@medplum/core';
import type { Resource, Subscription } from '@medplum/fhirtypes';
import type { CareTeamPatients } from '../auth/care-team.ts';
import { visible } from '../auth/fhir-guard.ts';
import type { JobContext, JobQueue } from '../jobs/queue.ts';
import { quote } from '../store/columns.ts';
import { extractParams } from '../store/extract.ts';
import type { Repository } from '../store/repository.ts';
import { historyTable } from '../store/schema.ts';
import { Params } from '../store/search/conditions.ts';
import { executeSearch, type Restriction } from '../store/search/execute.ts';
import { MAX_COUNT, parseSearch } from '../store/search/query.ts';
import { ownerRestriction } from './access.ts';
import type { SubscriptionConfig } from './config.ts';
import { sendsResources, type Delivery, type DeliveryEvent } from './delivery.ts';
import { numberEvents, type SubscriptionEvent } from './events.ts';
import { fanOutJobs, type FanOut, type QueuedDelivery } from './fan-out.ts';
import type { Change, ChangeBatch } from './outbox.ts';
import { parseSubscription, type ParsedSubscription, type Trigger } from './parse.ts';
import type { Candidate, SubscriptionRegistry } from './registry.ts';
import { setStatus } from './status.ts';

/** Changes of a batch matched at once. */
const CONCURRENCY = 8;
/** Focus versions up to this size travel in the delivery job; larger ones are read when sent. */
const CARRIED_BYTES = 16 * 1024;

interface Version {
  resource: Resource;
  /** Its stored JSON, which notifications carry as it is. */
  content: string;
}

/** A change with its versions and the triggers it may match. */
interface Prepared {
  change: Change;
  current?: Resource;
  previous: () => Promise<Resource | undefined>;
  candidates: Candidate[];
}

/** Shared by the changes matched together: each owner's restriction, each trigger's search. */
interface Batch {
  restriction(sub: ParsedSubscription): Promise<Restriction | undefined>;
  /** The ids, among the batch's live changes the candidate may match, that its search finds. */
  found(candidate: Candidate): Promise<Set<string>>;
}

/**
 * Handles one batch of committed changes from the outbox, in commit order: activates `requested`
 * subscriptions, and matches the other changes against the active ones. The changes between two
 * Subscription changes are matched concurrently, their versions read with one query per resource
 * type, each trigger's search run once for all of them; then every matched event is numbered in
 * one statement, and each matching subscription gets one delivery carrying its events in commit
 * order; the deliveries go out in fan-out jobs (fan-out.ts), which keep that order per subscription.
 */
export class Matcher {
  readonly #repo: Repository;
  readonly #registry: SubscriptionRegistry;
  readonly #deliveries: JobQueue<Delivery>;
  readonly #fanOut: JobQueue<FanOut>;
  readonly #config: SubscriptionConfig;
  readonly #careTeams: CareTeamPatients;

  constructor(
    repo: Repository, registry: SubscriptionRegistry, deliveries: JobQueue<Delivery>, fanOut: JobQueue<FanOut>, config: SubscriptionConfig, careTeams: CareTeamPatients,
  ) {
    this.#repo = repo;
    this.#careTeams = careTeams;
    this.#registry = registry;
    this.#deliveries = deliveries;
    this.#fanOut = fanOut;
    this.#config = config;
  }

  handle = async (job: JobContext<ChangeBatch>): Promise<void> => {
    // what was committed before a subscription changed is matched against the subscriptions as they were
    for (const run of runs(job.data.changes, (c) => c.resourceType === 'Subscription')) {
      if (run[0].resourceType === 'Subscription') await this.#subscriptionsChanged(run);
      else await this.#matchAll(run);
    }
  };

  /** Subscriptions changed one after the other: their versions read at once, the requested ones activated concurrently. */
  async #subscriptionsChanged(changes: Change[]): Promise<void> {
    this.#registry.invalidate();
    const kept = changes.filter((c) => c.interaction !== 'delete');
    const versions = await this.#versions(kept);
    await mapLimit(kept, CONCURRENCY, (change) => this.#activate(change, versions.get(versionKey(change.resourceType, change.id, change.versionId))?.resource as Subscription | undefined));
  }

  async #matchAll(changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    await this.#registry.refresh();
    const relevant = changes.filter((c) => this.#registry.hasType(c.resourceType));
    if (relevant.length === 0) return;
    const versions = await this.#versions(relevant);
    const prepared = relevant.map((change) => this.#prepare(change, versions));
    const batch = this.#batch(prepared);
    const matched = await mapLimit(prepared, CONCURRENCY, (p) => this.#match(p, batch));
    const bySubscription = new Map<string, { sub: ParsedSubscription; changes: Change[] }>();
    relevant.forEach((change, i) => {
      for (const sub of matched[i]) {
        const entry = bySubscription.get(sub.id);
        if (entry) entry.changes.push(change);
        else bySubscription.set(sub.id, { sub, changes: [change] });
      }
    });
    if (bySubscription.size === 0) return;
    const entries = [...bySubscription.values()];
    const at = (f: Change) => f.interaction === 'delete' ? undefined : versions.get(versionKey(f.resourceType, f.id, f.versionId))?.resource.meta?.lastUpdated;
    // only topic-based subscriptions number their events (events.ts)
    const topical = entries.filter(({ sub }) => sub.topic);
    const numbered = await numberEvents(this.#repo.db, topical.flatMap(({ sub, changes: focus }) => focus.map((f) => ({ subscriptionId: sub.id, focus: f, at: at(f) }))));
    const now = new Date().toISOString();
    let next = 0;
    // one delivery per subscription, its events in commit order
    const deliveries = entries.map(({ sub, changes: focus }): QueuedDelivery => {
      const matched: SubscriptionEvent[] = sub.topic ? numbered.slice(next, (next += focus.length)) : focus.map((f) => ({ timestamp: at(f) ?? now, focus: f }));
      const events = matched.map((event): DeliveryEvent => {
        const version = sendsResources(sub) ? versions.get(versionKey(event.focus.resourceType, event.focus.id, event.focus.versionId)) : undefined;
        return version && version.content.length <= CARRIED_BYTES ? { ...event, content: version.content } : event;
      });
      const first = events[0].focus;
      return {
        delivery: { subscriptionId: sub.id, kind: 'event', events },
        // the same events matched again (a re-drained batch) while the first delivery waits are absorbed
        jobId: `${sub.id}/${first.resourceType}/${first.id}/${first.versionId}+${events.length}`,
      };
    });
    await this.#fanOut.enqueueMany(fanOutJobs(deliveries, this.#config));
  }

  /** The change's version (a deletion: the one before it) and the triggers its index may match. */
  #prepare(change: Change, versions: Map<string, Version>): Prepared {
    const deleted = change.interaction === 'delete';
    const read = (version: number) => versions.get(versionKey(change.resourceType, change.id, version));
    const current = deleted ? undefined : read(change.versionId)?.resource;
    // a deletion's previous version came with the batch; another's is read if a FHIRPath condition asks
    let previous = deleted ? Promise.resolve(read(change.versionId - 1)?.resource) : undefined;
    const loadPrevious = () => (previous ??= change.versionId > 1 ? this.#version(change, change.versionId - 1) : Promise.resolve(undefined));
    const indexed = read(deleted ? change.versionId - 1 : change.versionId);
    const keyed = this.#registry.keyedParams(change.resourceType);
    const row = indexed && keyed.size ? extractParams(indexed.resource, this.#repo.baseUrl, keyed, indexed.content) : undefined;
    const candidates = deleted || current ? this.#registry.candidates(change.resourceType, change.interaction, row) : [];
    return { change, current, previous: loadPrevious, candidates };
  }

  /** Each owner's restriction is computed, and each trigger's search run, on first use. */
  #batch(prepared: Prepared[]): Batch {
    const ids = new Map<Candidate, Set<string>>();
    for (const { change, candidates } of prepared) {
      // a deleted resource is no longer searchable (see #matches)
      if (change.interaction === 'delete') continue;
      for (const c of candidates) ids.set(c, (ids.get(c) ?? new Set()).add(change.id));
    }
    const restrictions = new Map<ParsedSubscription, Promise<Restriction | undefined>>();
    const searches = new Map<Candidate, Promise<Set<string>>>();
    const restriction = (sub: ParsedSubscription) => once(restrictions, sub, () => ownerRestriction(sub.owner, this.#careTeams, this.#repo.baseUrl));
    return {
      restriction,
      found: (c) => once(searches, c, async () => this.#search(c.trigger, [...(ids.get(c) ?? [])], await restriction(c.sub))),
    };
  }

  /** The subscriptions one change matches. */
  async #match({ change, current, previous, candidates }: Prepared, batch: Batch): Promise<ParsedSubscription[]> {
    const matched = await Promise.all(candidates.map((c) => this.#matches(c, change, current, previous, batch)));
    return [...new Set(candidates.filter((_, i) => matched[i]).map((c) => c.sub))];
  }

  /** Which of the resources the trigger's search finds now, within what the owner may read. */
  async #search(trigger: Trigger, ids: string[], restrict: Restriction | undefined): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < ids.length; i += MAX_COUNT) {
      const chunk = ids.slice(i, i + MAX_COUNT);
      const params = new URLSearchParams(trigger.search);
      params.append('_id', chunk.join(','));
      params.set('_count', String(chunk.length));
      params.set('_total', 'none');
      const result = await executeSearch(this.#repo.db, parseSearch(trigger.resourceType, params), this.#repo.baseUrl, restrict);
      for (const match of result.matches) found.add(match.id);
    }
    return found;
  }

  /** The versions the changes name (a deletion: the version before it), one query per resource type. */
  async #versions(changes: Change[]): Promise<Map<string, Version>> {
    const wanted = new Map<string, { ids: string[]; versions: number[] }>();
    for (const change of changes) {
      const version = change.interaction === 'delete' ? change.versionId - 1 : change.versionId;
      if (version < 1) continue;
      let type = wanted.get(change.resourceType);
      if (!type) wanted.set(change.resourceType, (type = { ids: [], versions: [] }));
      type.ids.push(change.id);
      type.versions.push(version);
    }
    const found = new Map<string, Version>();
    await Promise.all([...wanted].map(async ([type, { ids, versions }]) => {
      const rows = await this.#repo.db.query<{ id: string; version_id: number; content: string | null }>(
        `SELECT h.id, h.version_id, h.content FROM ${quote(historyTable(type))} h
         JOIN unnest($1::text[], $2::int[]) AS w(id, version_id) ON h.id = w.id AND h.version_id = w.version_id`,
        [ids, versions],
      );
      for (const row of rows) {
        if (row.content) found.set(versionKey(type, row.id, Number(row.version_id)), { resource: JSON.parse(row.content) as Resource, content: row.content });
      }
    }));
    return found;
  }

  /**
   * The trigger's search, run against the database restricted to the batch's changed resources (the
   * REST API's own semantics, chains included) and to what the subscription's owner may read now,
   * then its FHIRPath conditions. A deleted resource is no longer searchable: its last version is
   * tested in memory instead (@medplum/core's matcher), and the owner's access on its deleted row.
   */
  async #matches(candidate: Candidate, change: Change, current: Resource | undefined, previous: () => Promise<Resource | undefined>, batch: Batch): Promise<boolean> {
    const { sub, trigger, keyOnly } = candidate;
    const restrict = await batch.restriction(sub);
    const limited = restrict?.('t', change.resourceType, new Params()) !== undefined;
    // found through the one filter its search has, tested on this version's index as the SQL would: nothing left to search
    const searched = keyOnly && !limited;
    if (!searched && change.interaction === 'delete') {
      const last = await previous();
      if (!last) return false;
      if ([...trigger.search].length && !matchesSearchRequest(last, parseSearchRequest(`${change.resourceType}?${trigger.search}`))) return false;
      if (restrict && limited && !(await visible(this.#repo.db, restrict, change.resourceType, change.id))) return false;
    } else if (!searched && ([...trigger.search].length || limited) && !(await batch.found(candidate)).has(change.id)) {
      return false;
    }
    if (trigger.fhirpath.length === 0) return true;
    const before = await previous();
    return trigger.fhirpath.every((expression) => fhirPathMet(expression, current, before));
  }

  /**
   * requested → active, or error with the reason. Topic-based rest-hooks must accept a handshake
   * first: a delivery job, retried with backoff like any notification, that activates on success
   * and sets `error` after its last attempt (delivery.ts).
   */
  async #activate(change: Change, resource: Subscription | undefined): Promise<void> {
    if (resource?.status !== 'requested') return;
    const stored = await this.#repo.readVersion('Subscription', change.id).catch(() => undefined);
    if (stored?.versionId !== String(change.versionId)) return;
    let sub;
    try {
      sub = parseSubscription(resource, this.#config.allowPrivateEndpoints);
    } catch (err) {
      await setStatus(this.#repo, change.id, 'error', (err as Error).message, ['requested']);
      return;
    }
    if (sub.topic && sub.channel.type === 'rest-hook') {
      await this.#deliveries.enqueue(
        { subscriptionId: sub.id, kind: 'handshake' },
        {
          jobId: `${sub.id}/handshake/${change.versionId}`,
          groupKey: sub.id,
          attempts: this.#config.handshakeAttempts,
          backoff: this.#config.backoff,
        },
      );
      return;
    }
    await setStatus(this.#repo, change.id, 'active', undefined, ['requested']);
  }

  async #version(change: Change, versionId: number): Promise<Resource | undefined> {
    const rows = await this.#repo.db.query<{ content: string | null }>(
      `SELECT content FROM ${quote(historyTable(change.resourceType))} WHERE id = $1 AND version_id = $2`,
      [change.id, versionId],
    );
    return rows[0]?.content ? (JSON.parse(rows[0].content) as Resource) : undefined;
  }
}

const versionKey = (type: string, id: string, version: number): string => `${type}/${id}/${version}`;

/** The items split into runs of consecutive items alike by `kind`, in order. */
function runs<T>(items: readonly T[], kind: (item: T) => boolean): T[][] {
  const result: T[][] = [];
  items.forEach((item, i) => {
    if (i > 0 && kind(item) === kind(items[i - 1])) result[result.length - 1].push(item);
    else result.push([item]);
  });
  return result;
}

/** The value memoised under `key`, made on first use. */
function once<K, V>(memo: Map<K, V>, key: K, make: () => V): V {
  let value = memo.get(key);
  if (value === undefined) memo.set(key, (value = make()));
  return value;
}

/** `fn` over the items, at most `limit` at a time; results in the items' order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * A FHIRPath criterion (a Subscription's, a topic trigger's) on a change: evaluated on the current
 * version (a deletion's: the last one), with `%current` and `%previous`; met when it gives results
 * and every one is `true`.
 */
export function fhirPathMet(expression: string, current: Resource | undefined, previous: Resource | undefined): boolean {
  const variables = { '%current': toTypedValue(current ?? {}), '%previous': toTypedValue(previous ?? {}) };
  const result = evalFhirPathTyped(expression, [toTypedValue(current ?? previous ?? {})], variables);
  return result.length > 0 && result.every((r) => r.value === true);
}
