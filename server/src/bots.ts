import type { AuditEvent, Observation, Resource } from '@medplum/fhirtypes';
import { Counter, Histogram, type Registry } from 'prom-client';
import { baselineBot } from '../../bots/baseline/bot.ts';
import { news2Bot } from '../../bots/news2/bot.ts';
import { remindersBot } from '../../bots/reminders/bot.ts';
import { rulesBot } from '../../bots/rules/bot.ts';
import { BotHost, type BotHostOptions, type BotJob, type BotQueue, type TopicMatcher } from '../../bots/runtime/host.ts';
import type { Bot, Change, FhirClient } from '../../bots/runtime/manifest.ts';
import { silentDeviceBot } from '../../bots/silent-device/bot.ts';
import { thresholdsBot } from '../../bots/thresholds/bot.ts';
import { visible } from './auth/fhir-guard.ts';
import { lastnRows, lastnRowsMany, type LastnRow } from './fhir/operations/lastn.ts';
import { notFound } from './fhir/outcome.ts';
import type { JobQueue, QueueFactory } from './jobs/queue.ts';
import type { Logger } from './ops/logger.ts';
import { backlogGauge } from './ops/metrics.ts';
import { conditionalCreate } from './store/conditional.ts';
import { extractParams } from './store/extract.ts';
import type { Repository } from './store/repository.ts';
import { executeSearch, type Restriction } from './store/search/execute.ts';
import { parseSearch, splitValues } from './store/search/query.ts';
import { ParsedVersions } from './store/parsed.ts';
import { TickBatcher } from './store/tick-batcher.ts';
import type { ChangeBatch } from './subscriptions/outbox.ts';
import { fhirPathMet } from './subscriptions/matcher.ts';
import { getTopic, type TopicTrigger } from './subscriptions/topics.ts';

export const BUILT_IN_BOTS: readonly Bot[] = [news2Bot, thresholdsBot, rulesBot, baselineBot, remindersBot, silentDeviceBot];

/**
 * The bots' FHIR client on Vigil's own store: the REST layer's write path (validation, profiles,
 * outbox and change events) and search, as the system: bots act for the organisation (the host
 * limits each bot's code to its manifest's scopes, bots/runtime/scopes.ts). With
 * `restrict`, reads and searches see only what a caller's token does (an operation answering a user).
 */
export function storeClient(repo: Repository, restrict?: Restriction): FhirClient {
  const lookups = restrict ? undefined : keyedLookups(repo);
  // window reads of runs in flight together share a round trip, as keyed lookups do
  const windows = restrict ? undefined : new TickBatcher<URLSearchParams, LastnRow[]>((_, requests) => lastnRowsMany({ repo, baseUrl: repo.baseUrl }, requests), 200);
  const readings = new ParsedVersions<Observation>(WINDOW_ROWS_KEPT);
  return {
    async read<T extends Resource>(type: T['resourceType'], id: string): Promise<T> {
      if (restrict && !(await visible(repo.db, restrict, type, id))) throw notFound(`${type}/${id} not found`);
      return repo.read<T>(type, id);
    },
    async vread<T extends Resource>(type: T['resourceType'], id: string, versionId: string): Promise<T> {
      if (restrict && !(await visible(repo.db, restrict, type, id))) throw notFound(`${type}/${id} not found`);
      return JSON.parse((await repo.vread(type, id, versionId)).content as string) as T;
    },
    async search<T extends Resource>(type: T['resourceType'], params: Record<string, string | string[]>): Promise<T[]> {
      const keyed = lookups && keyedLookup(params);
      if (keyed) return (await lookups.add(type, keyed)).map((content) => JSON.parse(content) as T);
      const result = await executeSearch(repo.db, parseSearch(type, toQuery(params)), repo.baseUrl, restrict);
      return result.matches.map((m) => JSON.parse(m.content) as T);
    },
    async *searchPages<T extends Resource>(type: T['resourceType'], params: Record<string, string | string[]>): AsyncIterable<T[]> {
      const query = toQuery(params);
      for (;;) {
        const result = await executeSearch(repo.db, parseSearch(type, query), repo.baseUrl, restrict);
        yield result.matches.map((m) => JSON.parse(m.content) as T);
        if (!result.next) return;
        query.set('_cursor', result.next);
      }
    },
    async lastn(params: Record<string, string | string[]>): Promise<Observation[]> {
      const rows = windows ? await windows.add('lastn', toQuery(params)) : await lastnRows({ repo, baseUrl: repo.baseUrl }, toQuery(params), restrict);
      return rows.map((r) => readings.parse(`${r.id}/${r.version}`, r.content));
    },
    create: async <T extends Resource>(resource: T) => (await repo.create(resource)).resource as T,
    update: async <T extends Resource>(resource: T, options: { ifMatch?: string } = {}) => (await repo.update(resource, { ifMatch: options.ifMatch, allowCreate: false })).resource as T,
    async createIfNoneExist<T extends Resource>(resource: T, criteria: string) {
      const { resource: stored, created } = await repo.transaction((w) => conditionalCreate(w, resource, criteria));
      return { resource: stored as T, created };
    },
  };
}

/** Window rows whose parse is kept: a few dozen per patient in a run's window, for a thousand patients or so. */
const WINDOW_ROWS_KEPT = 40_000;

interface KeyedLookup {
  /** The `identifier` parameter as given: one or more `system|value` tokens. */
  identifier: string;
  count: number;
}

const IDENTIFIER: ReadonlySet<string> = new Set(['identifier']);
const MAX_KEYED_COUNT = 1000;

/** A search by `identifier` (and `_count`) alone: how bots find what they keyed (their Flags, scores, notices). */
function keyedLookup(params: Record<string, string | string[]>): KeyedLookup | undefined {
  const { identifier, _count, ...rest } = params;
  const count = Number(_count);
  if (typeof identifier !== 'string' || Object.keys(rest).length > 0 || !Number.isInteger(count) || count < 1 || count > MAX_KEYED_COUNT) return undefined;
  return { identifier, count };
}

/**
 * Keyed lookups of one type made in the same tick share one search: with many runs in flight, each
 * clearing or raising a patient's alert looks its Flag up, and one query a tick serves them all.
 * Each lookup gets the matches a search of its own would give, in the same order: the matches whose
 * identifier index holds one of its tokens. Should the shared search be cut short by its count, the
 * lookups run one by one (the batcher's retry).
 */
function keyedLookups(repo: Repository): TickBatcher<KeyedLookup, string[]> {
  return new TickBatcher(async (type, lookups) => {
    const count = Math.min(MAX_KEYED_COUNT, lookups.reduce((n, l) => n + l.count, 0));
    const query = new URLSearchParams({ identifier: lookups.map((l) => l.identifier).join(','), _count: String(count) });
    const result = await executeSearch(repo.db, parseSearch(type, query), repo.baseUrl);
    if (lookups.length === 1) return [result.matches.map((m) => m.content)];
    if (result.next) throw new Error('shared lookup cut short');
    const found = result.matches.map((m) => ({ content: m.content, tokens: new Set((extractParams(JSON.parse(m.content) as Resource, repo.baseUrl, IDENTIFIER).identifier as string[] | undefined) ?? []) }));
    return lookups.map(({ identifier, count: n }) => {
      const wanted = splitValues(identifier);
      return found.filter((f) => wanted.some((t) => f.tokens.has(t))).slice(0, n).map((f) => f.content);
    });
  }, 200);
}

function toQuery(params: Record<string, string | string[]>): URLSearchParams {
  const query = new URLSearchParams();
  for (const [name, values] of Object.entries(params)) for (const v of [values].flat()) query.append(name, v);
  return query;
}

export interface BotService {
  host: BotHost;
  /** Where the outbox drain puts every batch of committed changes, for the bots' triggers; none when the bots run on an external server. */
  changes?: JobQueue<ChangeBatch>;
}

export interface BotParts {
  /** The store the bots act on: Vigil's own (`storeClient`) or an external server's. */
  fhir: FhirClient;
  queues: QueueFactory;
  /** Takes each run's AuditEvent: Vigil's batched audit trail. */
  record: (event: AuditEvent) => void;
  /** Where the runs' metrics are registered (`/metrics`). */
  registry: Registry;
  logger: Logger;
  /** Runs in flight at once (default 8). */
  concurrency?: number;
}

/** Batches of changes checked against the triggers at once; they need no order (each run is its own job). */
const FEED_CONCURRENCY = 2;

/**
 * Starts the bot workers: runs on the job queue, and scheduled bots' sweeps on its schedules (one
 * run per period across workers). Each run's AuditEvent goes to the batched audit trail, like the
 * requests': it is no FHIR write, so it notifies no subscription and triggers no bot.
 */
export function startBots({ fhir, queues, record, registry, logger, concurrency }: BotParts, bots: readonly Bot[]): BotHost {
  const queue = queues.queue<BotJob>('bots');
  const host = new BotHost({
    bots,
    fhir,
    queue,
    audit: record,
    onError: (err, context) => logger.error({ err, ...context }, 'bot failure'),
    observe: botMetrics(registry, queue),
    concurrency,
  });
  host.start();
  return host;
}

/** `vigil_bot_runs_total{bot,outcome}`, `vigil_bot_run_duration_seconds{bot}` and `vigil_bot_runs_pending` (queued or running). */
function botMetrics(registry: Registry, queue: BotQueue): NonNullable<BotHostOptions['observe']> {
  const runs = new Counter({ name: 'vigil_bot_runs_total', help: 'Bot runs recorded, by bot and outcome (left: left to a run on a newer trigger)', labelNames: ['bot', 'outcome'], registers: [registry] });
  const durations = new Histogram({
    name: 'vigil_bot_run_duration_seconds',
    help: 'How long a bot handler ran',
    labelNames: ['bot'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  backlogGauge(registry, 'vigil_bot_runs_pending', 'Bot runs queued or running', () => queue.pending());
  return ({ bot, outcome, seconds }) => {
    runs.inc({ bot, outcome });
    if (seconds !== undefined) durations.observe({ bot }, seconds);
  };
}

/**
 * The bots' feed on Vigil's own store: the outbox drain hands them every committed change on their
 * own queue, beside (not behind) subscription matching, so a change committed before a crash still
 * reaches them.
 */
export function outboxFeed(host: BotHost, queues: QueueFactory): JobQueue<ChangeBatch> {
  const changes = queues.queue<ChangeBatch>('bot-changes');
  changes.process(
    (job) => host.handleChanges(job.data.changes.map(({ versionId, ...change }) => ({ ...change, versionId: String(versionId) })), { signal: job.signal, topics: storeTopics }),
    { concurrency: FEED_CONCURRENCY },
  );
  return changes;
}

/**
 * Vigil's own SubscriptionTopics (fhir-profiles/, as the subscriptions code loads them) decided for
 * bots as subscription matching decides them (subscriptions/matcher.ts): a trigger on the change's
 * type and interaction, its query as a search of the changed resources, then its FHIRPath over
 * `%current` and `%previous`. A topic's filters narrow a subscriber's notifications; a bot has none.
 */
export const storeTopics: TopicMatcher = {
  concerns: (topic, change) => getTopic(topic)?.triggers.some((t) => fits(t, change)) ?? false,
  async matching(topic, changed, fhir) {
    const matched = new Set<string>();
    for (const trigger of getTopic(topic)?.triggers ?? []) {
      const mine = changed.filter(({ change }) => fits(trigger, change));
      if (mine.length === 0) continue;
      const found = trigger.query === undefined ? undefined : await searched(fhir, trigger, mine.map((c) => c.change.id));
      const met = await Promise.all(mine.map(async ({ change, resource }) => (!found || found.has(change.id)) && (await fhirPathHolds(fhir, trigger, change, resource))));
      mine.forEach(({ change }, i) => {
        if (met[i]) matched.add(change.id);
      });
    }
    return matched;
  },
};

const fits = (trigger: TopicTrigger, change: Change): boolean =>
  trigger.resourceType === change.resourceType && change.interaction !== 'sweep' && trigger.interactions.includes(change.interaction);

/** Which of the resources the trigger's query finds now: the REST API's search semantics, as subscriptions have them. */
async function searched(fhir: FhirClient, trigger: TopicTrigger, ids: string[]): Promise<Set<string>> {
  const unique = [...new Set(ids)];
  const params: Record<string, string[]> = { _id: [unique.join(',')], _count: [String(unique.length)] };
  for (const [k, v] of new URLSearchParams(trigger.query)) (params[k] ??= []).push(v);
  return new Set((await fhir.search(trigger.resourceType as Resource['resourceType'], params)).map((r) => r.id as string));
}

/** The trigger's FHIRPath condition, as the subscription matcher evaluates it. */
async function fhirPathHolds(fhir: FhirClient, trigger: TopicTrigger, change: Change, current: Resource): Promise<boolean> {
  if (!trigger.fhirpath) return true;
  const version = Number(change.versionId);
  const previous = version > 1 ? await fhir.vread(current.resourceType, change.id, String(version - 1)).catch(absent) : undefined;
  return fhirPathMet(trigger.fhirpath, current, previous);
}

/** A version that is a deletion (410) or gone has no content, as the matcher reads history: no `%previous`. */
function absent(err: { status?: number }): undefined {
  if (err.status === 404 || err.status === 410) return undefined;
  throw err;
}
