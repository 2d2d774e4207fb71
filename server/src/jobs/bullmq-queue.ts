import { DelayedError, Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { coalesceWrites } from './coalesced-writes.ts';
import { backoffDelay, checkPeriod, DEFAULT_CLOSE_TIMEOUT_MS, resolveOptions, settlesWithin, toError } from './options.ts';
import type { Backoff, CloseOptions, DeadLetter, EnqueueOptions, JobHandler, JobQueue, ProcessOptions, ScheduleOptions } from './queue.ts';

/*
 * Per-key ordering (groupKey). BullMQ has no groups outside its Pro edition, and a queue per key
 * would need a worker per key in every process. Instead every grouped job is a normal job in the
 * one queue, and Redis keeps, per key, a list of its job ids in enqueue order:
 * - only the list's head is due; later jobs are added "parked" (delayed by parkMs);
 * - when the head finishes (completes or is dead-lettered), its worker pops it and promotes the
 *   new head; a head that is retrying stays head, so later jobs wait for it;
 * - a parked job that wakes on its own re-checks: if the head's job is gone or finished for longer
 *   than staleMs (its process died between two steps), it removes that head and moves on.
 * Any number of worker processes can share the queue: they only ever run a key's head.
 */

/** Wait times of the group bookkeeping (`QueueOptions.groupRecheckMs` shortens them). */
export interface GroupTiming {
  /** How long a non-head job sleeps before checking again whether its group is stuck. */
  parkMs: number;
  /** How long a finished or missing head may stay in its list before others skip it. */
  staleMs: number;
}

export const DEFAULT_GROUP_TIMING: GroupTiming = { parkMs: 5 * 60_000, staleMs: 60_000 };

export interface BullMqQueueOptions {
  redis: Redis;
  prefix: string;
  onError: (error: Error) => void;
  groupTiming?: GroupTiming;
  /** A running job's lock, renewed while it runs: a job whose worker died runs again once it lapses. */
  lockMs?: number;
}

interface Envelope<T> {
  id: string;
  data: T;
  groupKey?: string;
  backoff: Backoff;
  /** When a delayed grouped job may run once it becomes its group's head. */
  runAt: number;
  /** Added as its group's head, which it stays until it finishes: it need not check its turn. */
  head?: boolean;
}

interface Running<T> {
  job: Job<Envelope<T>>;
  token?: string;
  abort: AbortController;
  done: Promise<void>;
}

const JOB_NAME = 'job';
const BACKOFF_TYPE = 'vigil-jitter';

/**
 * Keys: group list, group index (id → enqueue time), the job's own hash. Args: id, now. Returns the
 * position, or 0 if the job exists. An id already in the list without its job was claimed by an
 * enqueue that failed before adding it: it keeps its place, and this enqueue adds the job.
 */
const ENQUEUE_IN_GROUP = `
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  local index = redis.call('LPOS', KEYS[1], ARGV[1])
  if index then
    return index + 1
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('RPUSH', KEYS[1], ARGV[1])`;

/** Keys: group list, group index. Arg: the finished job's id. Pops it if it is the head; returns the new head. */
const ADVANCE_GROUP = `
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then
  redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return redis.call('LINDEX', KEYS[1], 0)`;

/** The group scripts as ioredis commands: sent by SHA (EVALSHA), not as their source on every call. */
interface GroupCommands {
  vigilEnqueueInGroup(list: string, index: string, job: string, id: string, now: number): unknown;
  vigilAdvanceGroup(list: string, index: string, id: string): Promise<unknown>;
}

function withGroupCommands(redis: Redis): Redis & GroupCommands {
  if (!('vigilAdvanceGroup' in redis)) {
    redis.defineCommand('vigilEnqueueInGroup', { numberOfKeys: 3, lua: ENQUEUE_IN_GROUP });
    redis.defineCommand('vigilAdvanceGroup', { numberOfKeys: 2, lua: ADVANCE_GROUP });
  }
  return redis as Redis & GroupCommands;
}

/** One connection per factory, shared by all its queues and workers (workers add their own blocking one). */
export function connectRedis(url: string, onError: (error: Error) => void): Redis {
  // BullMQ needs maxRetriesPerRequest: null so commands wait out a reconnect instead of failing.
  const redis = coalesceWrites(new Redis(url, { maxRetriesPerRequest: null }));
  redis.on('error', onError);
  return redis;
}

/** BullMQ rejects ids containing ':' and integer-like ids; the prefix and escape keep any id usable. */
function toBullId(id: string): string {
  return `j${id.replaceAll('%', '%25').replaceAll(':', '%3A')}`;
}

export class BullMqQueue<T> implements JobQueue<T> {
  readonly name: string;
  readonly #redis: Redis & GroupCommands;
  readonly #prefix: string;
  readonly #onError: (error: Error) => void;
  readonly #timing: GroupTiming;
  readonly #lockMs: number;
  readonly #queue: Queue<Envelope<T>>;
  readonly #running = new Map<string, Running<T>>();
  #worker?: Worker<Envelope<T>>;
  #closed = false;

  constructor(name: string, options: BullMqQueueOptions) {
    this.name = name;
    this.#redis = withGroupCommands(options.redis);
    this.#prefix = options.prefix;
    this.#onError = options.onError;
    this.#timing = options.groupTiming ?? DEFAULT_GROUP_TIMING;
    this.#lockMs = options.lockMs ?? 30_000;
    this.#queue = new Queue<Envelope<T>>(name, {
      connection: options.redis,
      prefix: options.prefix,
      // Completed jobs go at once (so their id can be enqueued again); failed ones are the dead letters.
      defaultJobOptions: { removeOnComplete: true, removeOnFail: false },
    });
    this.#queue.on('error', this.#onError);
  }

  async enqueue(data: T, options: EnqueueOptions = {}): Promise<string> {
    const [id] = await this.enqueueMany([{ data, options }]);
    return id;
  }

  /**
   * Three round trips whatever the number of jobs: the grouped ones claim their places in one
   * pipeline, all are added in another (addBulk), and the parked ones check whether their head
   * finished meanwhile in a third.
   */
  async enqueueMany(jobs: readonly { data: T; options?: EnqueueOptions }[]): Promise<string[]> {
    if (this.#closed) throw new Error(`queue ${this.name} is closed`);
    const now = Date.now();
    // position in the job's group: 1 heads it (or no group), more is parked behind others, 0 is a duplicate
    const resolved = jobs.map(({ data, options = {} }) => {
      const job = resolveOptions(options);
      return { ...job, data, bullId: toBullId(job.jobId), position: 1 };
    });
    const grouped = resolved.filter((job) => job.groupKey !== undefined);
    if (grouped.length) {
      const pipeline = this.#redis.pipeline() as ReturnType<Redis['pipeline']> & GroupCommands;
      for (const job of grouped) {
        pipeline.vigilEnqueueInGroup(this.#groupList(job.groupKey!), this.#groupIndex(), this.#queue.toKey(job.bullId), job.bullId, now);
      }
      const results = (await pipeline.exec()) ?? [];
      grouped.forEach((job, i) => {
        const [error, position] = results[i] ?? [new Error('no reply from Redis')];
        if (error) throw error;
        job.position = Number(position);
      });
    }
    const added = resolved.filter((job) => job.position !== 0);
    if (added.length === 0) return resolved.map((job) => job.jobId);
    await this.#queue.addBulk(added.map((job) => {
      const parked = job.position > 1;
      const head = job.groupKey !== undefined && !parked;
      const envelope: Envelope<T> = { id: job.jobId, data: job.data, groupKey: job.groupKey, backoff: job.backoff, runAt: now + job.delayMs, head };
      return { name: JOB_NAME, data: envelope, opts: { jobId: job.bullId, delay: parked ? this.#timing.parkMs : job.delayMs, attempts: job.attempts, backoff: { type: BACKOFF_TYPE } } };
    }));
    const parked = added.filter((job) => job.position > 1);
    if (parked.length) {
      // The head may have finished between the push and the add, when there was nothing to promote yet.
      const pipeline = this.#redis.pipeline();
      for (const job of parked) pipeline.lindex(this.#groupList(job.groupKey!), 0);
      const heads = (await pipeline.exec()) ?? [];
      await Promise.all(parked.map((job, i) => (heads[i]?.[1] === job.bullId ? this.#promote(job.bullId) : undefined)));
    }
    return resolved.map((job) => job.jobId);
  }

  /**
   * A BullMQ job scheduler: Redis holds one delayed job for the next period, created as the current
   * one starts, so replicas that all schedule the same id still run each period once.
   */
  async schedule(scheduleId: string, everyMs: number, data: T, options: ScheduleOptions = {}): Promise<void> {
    if (this.#closed) throw new Error(`queue ${this.name} is closed`);
    const { attempts, backoff } = resolveOptions(options);
    const envelope: Envelope<T> = { id: scheduleId, data, backoff, runAt: 0 };
    await this.#queue.upsertJobScheduler(
      toBullId(scheduleId),
      { every: checkPeriod(everyMs) },
      { name: JOB_NAME, data: envelope, opts: { attempts, backoff: { type: BACKOFF_TYPE }, removeOnComplete: true, removeOnFail: false } },
    );
  }

  process(handler: JobHandler<T>, options: ProcessOptions<T> = {}): void {
    if (this.#worker) throw new Error(`queue ${this.name} already has a handler`);
    if (this.#closed) throw new Error(`queue ${this.name} is closed`);
    const worker = new Worker<Envelope<T>>(this.name, (job, token) => this.#track(job, token, handler), {
      connection: this.#redis,
      prefix: this.#prefix,
      concurrency: options.concurrency ?? 1,
      lockDuration: this.#lockMs,
      stalledInterval: this.#lockMs,
      settings: { backoffStrategy: (attemptsMade, _type, _error, job) => backoffDelay(attemptsMade, job!.data.backoff) },
    });
    worker.on('error', this.#onError);
    const { onDeadLetter } = options;
    if (onDeadLetter) {
      worker.on('failed', (job) => {
        if (!job || job.attemptsMade < (job.opts.attempts ?? 1)) return;
        try {
          onDeadLetter(deadLetter(job));
        } catch (error) {
          this.#onError(toError(error));
        }
      });
    }
    this.#worker = worker;
  }

  async pending(): Promise<number> {
    const counts = await this.#queue.getJobCounts('wait', 'paused', 'prioritized', 'delayed', 'active');
    return Object.values(counts).reduce((sum, n) => sum + n, 0);
  }

  async groupSize(groupKey: string): Promise<number> {
    return this.#redis.llen(this.#groupList(groupKey));
  }

  async deadLetters(limit = 100): Promise<DeadLetter<T>[]> {
    const jobs = await this.#queue.getFailed(0, limit - 1);
    return jobs.map((job) => deadLetter(job as Job<Envelope<T>>));
  }

  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    if (worker) {
      await worker.pause(true);
      const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
      // Looked at again after each wait: a job fetched just before the pause may start late.
      while (this.#running.size > 0 && Date.now() < deadline) {
        const done = [...this.#running.values()].map((running) => running.done);
        await settlesWithin(Promise.allSettled(done), deadline - Date.now());
      }
      const stragglers = [...this.#running.values()];
      if (stragglers.length === 0) {
        await worker.close();
      } else {
        // Hand them back now; left to BullMQ's stall detection they would wait for their lock to expire.
        for (const running of stragglers) running.abort.abort();
        await Promise.all(stragglers.map((running) => running.job.moveToWait(running.token).catch(this.#onError)));
        await worker.close(true);
      }
    }
    await this.#queue.close();
  }

  #track(job: Job<Envelope<T>>, token: string | undefined, handler: JobHandler<T>): Promise<void> {
    const abort = new AbortController();
    const done = this.#run(job, token, handler, abort.signal);
    this.#running.set(job.id!, { job, token, abort, done });
    return done.finally(() => this.#running.delete(job.id!));
  }

  async #run(job: Job<Envelope<T>>, token: string | undefined, handler: JobHandler<T>, signal: AbortSignal): Promise<void> {
    const { id, data, groupKey, runAt, head } = job.data;
    const bullId = job.id!;
    if (groupKey !== undefined) {
      // A parked job running well before its park delay ends was promoted, which only a head ever is.
      const promoted = job.timestamp + this.#timing.parkMs / 2 > Date.now();
      const wakeAt = head || promoted || (await this.#isTurn(groupKey, bullId)) ? runAt : Date.now() + this.#timing.parkMs;
      if (wakeAt > Date.now()) {
        await job.moveToDelayed(wakeAt, token);
        throw new DelayedError();
      }
    }
    try {
      await handler({ id, data, groupKey, attempt: job.attemptsMade + 1, signal });
    } catch (error) {
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (groupKey !== undefined && last && !signal.aborted) await this.#advance(groupKey, bullId).catch(this.#onError);
      throw error;
    }
    // An aborted job was handed back to the queue: it is still its group's head.
    if (groupKey !== undefined && !signal.aborted) await this.#advance(groupKey, bullId).catch(this.#onError);
  }

  /** Whether the job heads its group, first skipping heads that a dead process left behind. */
  async #isTurn(groupKey: string, bullId: string): Promise<boolean> {
    const list = this.#groupList(groupKey);
    for (;;) {
      const head = await this.#redis.lindex(list, 0);
      // null: the job is missing from its group's bookkeeping; running it beats stranding it.
      if (head === null || head === bullId) return true;
      if (!(await this.#isStale(head))) return false;
      await this.#advance(groupKey, head);
    }
  }

  async #isStale(bullId: string): Promise<boolean> {
    const enqueuedAt = Number(await this.#redis.hget(this.#groupIndex(), bullId));
    if (Date.now() - enqueuedAt < this.#timing.staleMs) return false;
    const state = await this.#queue.getJobState(bullId);
    return state === 'unknown' || state === 'completed' || state === 'failed';
  }

  /** Removes a finished head and wakes the next job of its group. */
  async #advance(groupKey: string, bullId: string): Promise<void> {
    const next = await this.#redis.vigilAdvanceGroup(this.#groupList(groupKey), this.#groupIndex(), bullId);
    if (typeof next === 'string') await this.#promote(next);
  }

  async #promote(bullId: string): Promise<void> {
    // By id alone (promoting reads nothing else of the job). Fails unless the job is parked: already
    // promoted, running, or not yet added (its enqueuer promotes it).
    await new Job<Envelope<T>>(this.#queue, JOB_NAME, undefined as never, {}, bullId).promote().catch(() => {});
  }

  #groupList(groupKey: string): string {
    return this.#queue.toKey(`vigil-group:${groupKey}`);
  }

  #groupIndex(): string {
    return this.#queue.toKey('vigil-groups');
  }
}

function deadLetter<T>(job: Job<Envelope<T>>): DeadLetter<T> {
  return {
    id: job.data.id,
    data: job.data.data,
    groupKey: job.data.groupKey,
    attempts: job.attemptsMade,
    error: job.failedReason,
    failedAt: job.finishedOn ?? 0,
  };
}
