import { setTimeout as delay } from 'node:timers/promises';
import type { AuditEvent, Device, Reference, Resource } from '@medplum/fhirtypes';
import { runAuditEvent, type RunRecord } from './audit.ts';
import { BOT_SYSTEM, botDevice } from './identity.ts';
import type { Bot, BotResult, Change, FhirClient, SearchParams } from './manifest.ts';
import { recordingClient } from './recording.ts';
import { scopedClient } from './scopes.ts';
import { resolveSettings, settingsLookup, type BotSettings } from './settings.ts';

/**
 * One run of a bot on a change (or a resource a sweep visits), or a sweep that fans out into such
 * runs. A change's run carries the bot's settings for the patient as they were when the change was
 * checked (read for the whole batch at once); a visit resolves them when it runs.
 */
export type BotJob = RunJob | { bot: string; sweep: true };
type RunJob = { bot: string; change: Change; settings?: Omit<BotSettings, 'enabled'> };

type Backoff = { baseMs: number; capMs: number };

/** The part of the job queue (server/src/jobs) the host uses. */
export interface BotQueue {
  pending(): Promise<number>;
  enqueue(data: BotJob, options: { jobId: string; attempts: number; backoff: Backoff }): Promise<string>;
  schedule(scheduleId: string, everyMs: number, data: BotJob, options: { attempts: number; backoff: Backoff }): Promise<void>;
  process(
    handler: (job: { id: string; data: BotJob; attempt: number; signal: AbortSignal }) => Promise<void>,
    options?: { concurrency?: number; onDeadLetter?: (job: { id: string; data: BotJob; error: string }) => void },
  ): void;
}

export interface BotHostOptions {
  bots: readonly Bot[];
  fhir: FhirClient;
  queue: BotQueue;
  /** Takes each run's AuditEvent (Vigil: its batched audit trail, so that recording a run is no write that notifies). */
  audit: (event: AuditEvent) => void;
  concurrency?: number;
  /** Runs queued or running beyond which `handleChanges` waits (default 10,000). */
  maxPendingRuns?: number;
  /** Told of each recorded run: its outcome (`left` for one left to another run) and, for a run of the handler, how long it took. */
  observe?: (run: { bot: string; outcome: RunOutcome; seconds?: number }) => void;
  onError?: (error: unknown, context: Record<string, unknown>) => void;
}

export type RunOutcome = BotResult['outcome'] | 'error' | 'left';

/**
 * How topic triggers are decided for the changes a feed hands the host: by the server whose topic it
 * is. Vigil evaluates its own topics on its store (server/src/bots.ts); an external server has
 * already matched what it notifies a bot of.
 */
export interface TopicMatcher {
  /** Whether the topic may match the change (a trigger on its type and interaction), before anything is read. */
  concerns(topic: string, change: Change): boolean;
  /** The ids of the changed resources (of one type, each at the version its change names) whose change the topic matches. */
  matching(topic: string, changed: readonly { change: Change; resource: Resource }[], fhir: FhirClient): Promise<Set<string>>;
}

/** A run this host enqueued for a bot with `coalesce`: its state, time and enqueue order. */
interface Queued {
  key: string;
  at: number;
  seq: number;
  job: RunJob;
  trigger: string;
  patientId: string | undefined;
  /** The run that assesses this trigger, once one has started: its own, or an earlier job's that took it over. */
  assessedBy?: Queued;
  /** The newer trigger this job's run took over (a retry runs on it again). */
  took?: Queued;
}

const DEFAULT_ATTEMPTS = 3;
/** Queued runs remembered for coalescing; beyond this the oldest are forgotten (they then simply run). */
const MAX_QUEUED = 100_000;
/** A run is left only to a trigger this close after its own: a device catching up on hours gets each older state assessed. */
const COALESCE_WITHIN_MS = 5 * 60_000;
const BACKOFF = { baseMs: 500, capMs: 60_000 };
/** Resources a sweep reads per query. */
const SWEEP_PAGE = '500';
/** Changed resources read per query when changes are checked against the triggers. */
const CHANGE_PAGE = 100;
/**
 * Overload backs up in the changes not yet checked (a few bytes each, in the feed's batches) rather
 * than in runs (each with its settings): a host that cannot keep up holds at most this many.
 */
const MAX_PENDING_RUNS = 10_000;
const BACKLOG_POLL_MS = 100;

/**
 * Runs bots on committed changes: `handleChanges` enqueues one job per bot whose trigger a change
 * meets, keyed by bot and resource version so a redelivered change is absorbed while its job is
 * pending; and on schedules: a sweep enqueues one job per resource it visits. `start` consumes the
 * jobs. Each bot is its own job, so one failing or slow bot never holds up another.
 */
export class BotHost {
  readonly #bots: ReadonlyMap<string, Bot>;
  readonly #fhir: FhirClient;
  /** Each bot's client, limited to its scopes: what its code (`accepts`, the handler) gets. */
  readonly #scoped: ReadonlyMap<string, FhirClient>;
  readonly #queue: BotQueue;
  readonly #audit: (event: AuditEvent) => void;
  readonly #concurrency: number;
  readonly #maxPendingRuns: number;
  readonly #onError: NonNullable<BotHostOptions['onError']>;
  readonly #observe: NonNullable<BotHostOptions['observe']>;
  readonly #agents = new Map<string, Promise<Reference<Device>>>();
  /**
   * Coalescing knows only the runs this host enqueued, and only as a hint: a run it does not know
   * is made, so nothing another replica needs lives here. By job id, and the newest per state.
   */
  readonly #queued = new Map<string, Queued>();
  readonly #newest = new Map<string, Queued>();
  #seq = 0;

  constructor(options: BotHostOptions) {
    this.#bots = new Map(options.bots.map((b) => [b.name, b]));
    this.#fhir = options.fhir;
    this.#scoped = new Map(options.bots.map((b) => [b.name, scopedClient(options.fhir, b)]));
    this.#queue = options.queue;
    this.#audit = options.audit;
    this.#concurrency = options.concurrency ?? 8;
    this.#maxPendingRuns = options.maxPendingRuns ?? MAX_PENDING_RUNS;
    this.#onError = options.onError ?? ((error, context) => console.error(context, error));
    this.#observe = options.observe ?? (() => undefined);
  }

  /**
   * Checks committed changes against the triggers before any job is made, a batch at a time: the
   * changed resources are read together (a change whose version is no longer current has a newer
   * change of its own; a deleted resource has nothing to act on), each bot's `criteria` is tried as
   * one search `criteria&_id=…` (the server's own semantics); the settings of every bot and patient
   * with a run to make are read together; disabled runs, and those the bot's `accepts` refuses
   * given the settings, are not made.
   * Each page of changes waits while `maxPendingRuns` runs are pending (until `signal` aborts).
   * With `bot`, only that bot's trigger is tried (a server notifying each bot of its own matches).
   * Bots triggered by a topic run only on a feed that gives its `topics`.
   */
  async handleChanges(changes: readonly Change[], { signal, bot: only, topics }: { signal?: AbortSignal; bot?: string; topics?: TopicMatcher } = {}): Promise<void> {
    const bots = [...this.#bots.values()].filter((b) => b.trigger && (only === undefined || b.name === only));
    const byType = new Map<string, Change[]>();
    for (const change of changes) {
      if (!bots.some((b) => wants(b, change, topics))) continue;
      const list = byType.get(change.resourceType);
      if (list) list.push(change);
      else byType.set(change.resourceType, [change]);
    }
    for (const [type, list] of byType) {
      for (let i = 0; i < list.length; i += CHANGE_PAGE) {
        while ((await this.#queue.pending()) >= this.#maxPendingRuns) await delay(BACKLOG_POLL_MS, undefined, { signal });
        await this.#handleChanges(type, list.slice(i, i + CHANGE_PAGE), bots, topics);
      }
    }
  }

  async #handleChanges(type: string, changes: Change[], bots: Bot[], topics: TopicMatcher | undefined): Promise<void> {
    const ids = [...new Set(changes.map((c) => c.id))];
    const found = await this.#fhir.search(type as Resource['resourceType'], { _id: ids.join(','), _count: String(ids.length) });
    const current = new Map(found.map((r) => [r.id as string, r]));
    const live = changes.filter((c) => current.get(c.id)?.meta?.versionId === c.versionId);
    const candidates: { bot: Bot; change: Change; resource: Resource; patientId: string | undefined }[] = [];
    for (const bot of bots) {
      const mine = live.filter((change) => wants(bot, change, topics));
      if (mine.length === 0) continue;
      const { criteria, topic } = bot.trigger ?? {};
      const matching = criteria
        ? await this.#matching(criteria, type, mine)
        : topic && topics
          ? await topics.matching(topic, mine.map((change) => ({ change, resource: current.get(change.id) as Resource })), this.#fhir)
          : undefined;
      for (const change of mine) {
        const resource = current.get(change.id) as Resource;
        if (!matching || matching.has(change.id)) candidates.push({ bot, change, resource, patientId: patientOf(resource) });
      }
    }
    if (candidates.length === 0) return;
    const settings = await settingsLookup(this.#fhir, [...new Set(candidates.map((c) => c.bot))], candidates.map((c) => c.patientId));
    // every accepts() at once, so that the lookups they make share round trips; in change order
    const runs = await Promise.all(candidates.map(async (candidate) => {
      const { enabled, ...given } = settings(candidate.bot, candidate.patientId);
      const accepts = candidate.bot.trigger?.accepts;
      return enabled && (!accepts || (await accepts(candidate.resource, this.#scoped.get(candidate.bot.name) as FhirClient, given))) ? { ...candidate, given } : undefined;
    }));
    for (const run of runs) {
      if (!run) continue;
      const { bot, change, resource, patientId, given } = run;
      const jobId = `${bot.name}/${change.resourceType}/${change.id}/${change.versionId}`;
      await this.#queue.enqueue({ bot: bot.name, change, settings: given }, { jobId, attempts: bot.attempts ?? DEFAULT_ATTEMPTS, backoff: BACKOFF });
      const state = bot.coalesce?.(resource);
      if (state) this.#remember(jobId, { key: `${bot.name}/${state.key}`, at: state.at, seq: ++this.#seq, job: { bot: bot.name, change, settings: given }, trigger: `${change.resourceType}/${change.id}`, patientId });
    }
  }

  /** Notes a run enqueued (its change committed); it is the newest of its state unless an earlier-enqueued one is later in time. */
  #remember(jobId: string, queued: Queued): void {
    this.#queued.set(jobId, queued);
    const newest = this.#newest.get(queued.key);
    if (!newest || queued.at >= newest.at) this.#newest.set(queued.key, queued);
    if (this.#queued.size > MAX_QUEUED) this.#forget(this.#queued.keys().next().value as string);
  }

  #forget(jobId: string, failed = false): void {
    const queued = this.#queued.get(jobId);
    if (!queued) return;
    this.#queued.delete(jobId);
    if (this.#newest.get(queued.key) === queued) this.#newest.delete(queued.key);
    // the newer trigger it took over is no longer being assessed: its own job runs
    if (failed && queued.took?.assessedBy === queued) queued.took.assessedBy = undefined;
  }

  /**
   * What a starting run does: run on its own trigger, run on the newest trigger of its state (taking
   * that job's work over), or leave its trigger to the run that assesses a newer one. A newer trigger
   * counts when enqueued after this one (so its change committed first) and at or shortly after its
   * time. Runs this host did not enqueue run on their own trigger.
   */
  #plan(mine: Queued | undefined): { run?: RunJob; note?: string } | { leave: string } {
    if (!mine) return {};
    if (mine.assessedBy && mine.assessedBy !== mine) return { leave: `assessed by the run on ${mine.assessedBy.trigger}, which took it over` };
    const newest = this.#newest.get(mine.key);
    const ahead = newest && newest.seq > mine.seq ? newest.at - mine.at : -1;
    if (newest && ahead >= 0 && ahead <= COALESCE_WITHIN_MS) {
      // (a retry finds the trigger it took over still assessed by itself)
      if (newest.assessedBy && newest.assessedBy !== mine) return { leave: `left to the run on ${newest.trigger}, a newer trigger of the same state` };
      newest.assessedBy = mine;
      mine.took = newest;
    }
    mine.assessedBy = mine;
    const took = mine.took;
    return took ? { run: took.job, note: `run on the newer ${took.trigger}, which arrived while this waited` } : {};
  }

  /** Consumes the jobs and schedules the sweeps (every replica does; the queue runs each period once). */
  start(): void {
    this.#queue.process((job) => ('sweep' in job.data ? this.#sweep(job.data.bot) : this.#run(job.id, job.data, job.attempt, job.signal)), {
      concurrency: this.#concurrency,
      onDeadLetter: (job) => this.#onError(new Error(job.error), { bot: job.data.bot, job: job.data, deadLetter: job.id }),
    });
    for (const bot of this.#bots.values()) {
      if (!bot.schedule) continue;
      this.#queue
        .schedule(`sweep-${bot.name}`, bot.schedule.everyMs, { bot: bot.name, sweep: true }, { attempts: DEFAULT_ATTEMPTS, backoff: BACKOFF })
        .catch((err: unknown) => this.#onError(err, { bot: bot.name, schedule: bot.schedule }));
    }
  }

  /** Runs a bot's sweep now, besides its schedule (operators, tests). */
  async sweep(name: string): Promise<void> {
    if (!this.#bots.get(name)?.schedule) throw new Error(`no scheduled bot named ${name}`);
    await this.#queue.enqueue({ bot: name, sweep: true }, { jobId: `sweep-${name}@${Date.now()}`, attempts: DEFAULT_ATTEMPTS, backoff: BACKOFF });
  }

  /**
   * One job per resource the bot's search finds, keyed by the period, so a retried or doubled sweep
   * adds nothing while the runs are pending. A sweep is not a run: the runs leave the AuditEvents.
   */
  async #sweep(name: string): Promise<void> {
    const bot = this.#bots.get(name);
    if (!bot?.schedule) throw new Error(`no scheduled bot named ${name}`);
    const { everyMs, search } = bot.schedule;
    const [type, query = ''] = search.split('?');
    const params: Record<string, string[]> = { _count: [SWEEP_PAGE] };
    for (const [k, v] of new URLSearchParams(query)) (params[k] ??= []).push(v);
    const period = new Date(Math.floor(Date.now() / everyMs) * everyMs).toISOString();
    for await (const page of this.#fhir.searchPages(type as Resource['resourceType'], params as SearchParams)) {
      for (const resource of page) {
        const change: Change = { interaction: 'sweep', resourceType: type, id: resource.id as string, versionId: resource.meta?.versionId ?? '' };
        const jobId = `${bot.name}/${type}/${resource.id}/sweep@${period}`;
        await this.#queue.enqueue({ bot: bot.name, change }, { jobId, attempts: bot.attempts ?? DEFAULT_ATTEMPTS, backoff: BACKOFF });
      }
    }
  }

  async #run(jobId: string, job: RunJob, attempt: number, jobSignal: AbortSignal): Promise<void> {
    let settled = false;
    try {
      const plan = this.#plan(this.#queued.get(jobId));
      if ('leave' in plan) await this.#leave(jobId, job, plan.leave, attempt);
      else await this.#runBot(job, attempt, jobSignal, plan.run, plan.note);
      settled = true;
    } finally {
      // a run that will be tried again stays known, with what it took over
      const final = attempt >= (this.#bots.get(job.bot)?.attempts ?? DEFAULT_ATTEMPTS);
      if (settled || final) this.#forget(jobId, !settled);
    }
  }

  /** A run left to another: the bot does not run, and its AuditEvent says which run assesses its trigger. */
  async #leave(jobId: string, { bot: name, change }: RunJob, message: string, attempt: number): Promise<void> {
    const bot = this.#bots.get(name) as Bot;
    const patientId = this.#queued.get(jobId)?.patientId;
    this.#audit(runAuditEvent({ bot, agent: await this.#agent(bot), change, patientId, result: { outcome: 'skipped', message }, written: [], attempt }));
    this.#observe({ bot: name, outcome: 'left' });
  }

  /** Runs the bot on `target`'s trigger (normally the job's own); the AuditEvent is the job's, with `note` on what it ran on. */
  async #runBot(job: RunJob, attempt: number, jobSignal: AbortSignal, target: RunJob = job, note?: string): Promise<void> {
    const { bot: name, change } = job;
    const given = target.settings;
    const bot = this.#bots.get(name);
    if (!bot) throw new Error(`no bot named ${name}`);
    // the trigger was checked when the job was made
    const resource = await this.#version(target.change);
    if (!resource) return;
    const patientId = patientOf(resource);
    const settings = given ? { enabled: true, ...given } : await resolveSettings(this.#fhir, bot, patientId);
    if (!settings.enabled) return;
    const agent = await this.#agent(bot);
    const signal = AbortSignal.any([jobSignal, AbortSignal.timeout(bot.timeoutMs)]);
    const { client, written } = recordingClient(this.#scoped.get(name) as FhirClient, signal);
    const noted = (message: string | undefined): string => [note, message].filter(Boolean).join(': ');
    const started = performance.now();
    const record = (result: RunRecord['result']): void => {
      this.#audit(runAuditEvent({ bot, agent, change, patientId, result: 'error' in result ? { error: noted(result.error) } : { ...result, message: noted(result.message) || undefined }, written, attempt }));
      this.#observe({ bot: name, outcome: 'error' in result ? 'error' : result.outcome, seconds: (performance.now() - started) / 1000 });
    };
    let result: BotResult;
    try {
      result = await abortable(bot.handler({ interaction: target.change.interaction, resource, agent, parameters: settings.parameters, goals: settings.goals, signal }, client), signal);
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      record({ error: message });
      throw error;
    }
    // A sweep visits every resource each period: a visit that found nothing to do is not recorded.
    if (change.interaction === 'sweep' && result.outcome !== 'rejected' && written.length === 0) return;
    record(result);
  }

  /**
   * The version the change names. A newer version has its own change and job, and a deleted
   * resource has nothing to act on: either way this job has no work. A sweep acts on the current
   * version, whichever it is.
   */
  async #version(change: Change): Promise<Resource | undefined> {
    const resource = await this.#fhir.read(change.resourceType as Resource['resourceType'], change.id).catch((err: { status?: number }) => {
      if (err.status === 404 || err.status === 410) return undefined;
      throw err;
    });
    return change.interaction === 'sweep' || resource?.meta?.versionId === change.versionId ? resource : undefined;
  }

  /** Which of the changed resources match the criteria, evaluated by the server itself: exactly its search semantics. */
  async #matching(criteria: string, type: string, changes: Change[]): Promise<Set<string>> {
    const [criteriaType, query = ''] = criteria.split('?');
    if (criteriaType !== type) return new Set();
    const ids = [...new Set(changes.map((c) => c.id))];
    const params: Record<string, string[]> = { _id: [ids.join(',')], _count: [String(ids.length)] };
    for (const [k, v] of new URLSearchParams(query)) (params[k] ??= []).push(v);
    return new Set((await this.#fhir.search(type as Resource['resourceType'], params as SearchParams)).map((r) => r.id as string));
  }

  /** The bot's Device, created on first use; concurrent and later runs find the same one. */
  #agent(bot: Bot): Promise<Reference<Device>> {
    let agent = this.#agents.get(bot.name);
    if (!agent) {
      agent = this.#fhir
        .createIfNoneExist(botDevice(bot.name, bot.title), `identifier=${encodeURIComponent(`${BOT_SYSTEM}|${bot.name}`)}`)
        .then(({ resource }) => ({ reference: `Device/${resource.id}`, display: bot.title }));
      agent.catch(() => this.#agents.delete(bot.name));
      this.#agents.set(bot.name, agent);
    }
    return agent;
  }
}

/** Whether the bot's trigger names the change's resource type and interaction, or its topic may match the change. */
function wants(bot: Bot, change: Change, topics: TopicMatcher | undefined): boolean {
  if (!bot.trigger || change.interaction === 'sweep') return false;
  if (bot.trigger.topic) return topics?.concerns(bot.trigger.topic, change) ?? false;
  const { resourceType, interactions = ['create', 'update'] } = bot.trigger;
  return resourceType === change.resourceType && interactions.includes(change.interaction);
}

/** The Patient a resource is about: itself, or its subject/patient when that is a Patient. */
export function patientOf(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  const r = resource as { subject?: Reference; patient?: Reference };
  const ref = r.subject?.reference ?? r.patient?.reference;
  return ref?.startsWith('Patient/') ? ref.slice('Patient/'.length) : undefined;
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
