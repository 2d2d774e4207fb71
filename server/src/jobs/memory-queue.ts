import { Fifo } from './fifo.ts';
import { backoffDelay, checkPeriod, DEFAULT_CLOSE_TIMEOUT_MS, resolveOptions, settlesWithin, toError } from './options.ts';
import type { Backoff, CloseOptions, DeadLetter, EnqueueOptions, JobHandler, ProcessOptions, ScheduleOptions, VolatileQueue } from './queue.ts';

/** Dead letters beyond this are forgotten, oldest first: memory is the only store here. */
const MAX_DEAD_LETTERS = 1_000;
/** setTimeout's ceiling (~24.8 days); longer waits are taken in several steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry<T> {
  id: string;
  data: T;
  groupKey?: string;
  attempts: number;
  backoff: Backoff;
  attemptsMade: number;
  runAt: number;
}

interface Running {
  done: Promise<void>;
  abort: AbortController;
}

/**
 * In-process queue for the embedded mode: same contract as the BullMQ one, but jobs live
 * only as long as the process (waiting and delayed jobs are dropped on close).
 */
export class MemoryQueue<T> implements VolatileQueue<T> {
  readonly name: string;
  readonly #onError: (error: Error) => void;
  /** Waiting, delayed and running jobs: the window in which a jobId deduplicates. */
  readonly #live = new Map<string, Entry<T>>();
  readonly #dead = new Map<string, DeadLetter<T>>();
  readonly #ready = new Fifo<Entry<T>>();
  /** Per group key, its jobs in enqueue order; only the head is ever scheduled. */
  readonly #groups = new Map<string, Fifo<Entry<T>>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #running = new Set<Running>();
  readonly #schedules = new Map<string, NodeJS.Timeout>();
  /** Who waits for a live job to be done with. */
  readonly #waiting = new Map<string, (() => void)[]>();
  #handler?: JobHandler<T>;
  #options: ProcessOptions<T> = {};
  #closed = false;

  constructor(name: string, options: { onError: (error: Error) => void }) {
    this.name = name;
    this.#onError = options.onError;
  }

  async enqueue(data: T, options: EnqueueOptions = {}): Promise<string> {
    if (this.#closed) throw new Error(`queue ${this.name} is closed`);
    const { jobId, delayMs, attempts, backoff, groupKey } = resolveOptions(options);
    if (this.#live.has(jobId) || this.#dead.has(jobId)) return jobId;
    const entry: Entry<T> = { id: jobId, data, groupKey, attempts, backoff, attemptsMade: 0, runAt: Date.now() + delayMs };
    this.#live.set(jobId, entry);
    if (groupKey === undefined) {
      this.#schedule(entry);
    } else {
      const group = this.#groups.get(groupKey);
      if (group) {
        group.push(entry);
      } else {
        const fifo = new Fifo<Entry<T>>();
        fifo.push(entry);
        this.#groups.set(groupKey, fifo);
        this.#schedule(entry);
      }
    }
    return jobId;
  }

  async enqueueMany(jobs: readonly { data: T; options?: EnqueueOptions }[]): Promise<string[]> {
    const ids: string[] = [];
    for (const { data, options } of jobs) ids.push(await this.enqueue(data, options));
    return ids;
  }

  /** One process only: a timer that enqueues the period's job, keyed by period so a retry never doubles it. */
  async schedule(scheduleId: string, everyMs: number, data: T, options: ScheduleOptions = {}): Promise<void> {
    if (this.#closed) throw new Error(`queue ${this.name} is closed`);
    checkPeriod(everyMs);
    resolveOptions(options);
    clearInterval(this.#schedules.get(scheduleId));
    const fire = (): void => {
      const jobId = `${scheduleId}@${Math.floor(Date.now() / everyMs)}`;
      this.enqueue(data, { ...options, jobId }).catch((error: unknown) => this.#onError(toError(error)));
    };
    this.#schedules.set(scheduleId, setInterval(fire, everyMs));
    fire();
  }

  process(handler: JobHandler<T>, options: ProcessOptions<T> = {}): void {
    if (this.#handler) throw new Error(`queue ${this.name} already has a handler`);
    if (this.#closed) throw new Error(`queue ${this.name} is closed`);
    this.#handler = handler;
    this.#options = options;
    this.#pump();
  }

  async pending(): Promise<number> {
    return this.#live.size;
  }

  async groupSize(groupKey: string): Promise<number> {
    return this.#groups.get(groupKey)?.length ?? 0;
  }

  settled(jobId: string): Promise<void> {
    if (!this.#live.has(jobId)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiting = this.#waiting.get(jobId);
      if (waiting) waiting.push(resolve);
      else this.#waiting.set(jobId, [resolve]);
    });
  }

  async deadLetters(limit = 100): Promise<DeadLetter<T>[]> {
    return [...this.#dead.values()].reverse().slice(0, limit);
  }

  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const timer of this.#schedules.values()) clearInterval(timer);
    this.#schedules.clear();
    const running = [...this.#running];
    const finished = await settlesWithin(Promise.all(running.map((job) => job.done)), options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
    if (!finished) for (const job of running) job.abort.abort();
  }

  /** Makes the entry runnable at its runAt. */
  #schedule(entry: Entry<T>): void {
    if (this.#closed) return;
    const wait = entry.runAt - Date.now();
    if (wait <= 0) {
      this.#ready.push(entry);
      this.#pump();
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#schedule(entry);
    }, Math.min(wait, MAX_TIMER_MS));
    this.#timers.add(timer);
  }

  #pump(): void {
    const handler = this.#handler;
    if (!handler) return;
    const concurrency = this.#options.concurrency ?? 1;
    while (!this.#closed && this.#running.size < concurrency && this.#ready.length > 0) {
      const entry = this.#ready.shift()!;
      const abort = new AbortController();
      const done = this.#run(entry, handler, abort.signal).finally(() => {
        this.#running.delete(running);
        this.#pump();
      });
      const running: Running = { abort, done };
      this.#running.add(running);
    }
  }

  async #run(entry: Entry<T>, handler: JobHandler<T>, signal: AbortSignal): Promise<void> {
    entry.attemptsMade += 1;
    try {
      await handler({ id: entry.id, data: entry.data, attempt: entry.attemptsMade, groupKey: entry.groupKey, signal });
    } catch (error) {
      if (this.#closed) return;
      if (entry.attemptsMade < entry.attempts) {
        entry.runAt = Date.now() + backoffDelay(entry.attemptsMade, entry.backoff);
        this.#schedule(entry);
        return;
      }
      this.#bury(entry, toError(error).message);
    }
    this.#live.delete(entry.id);
    for (const resolve of this.#waiting.get(entry.id) ?? []) resolve();
    this.#waiting.delete(entry.id);
    this.#advance(entry);
  }

  #bury(entry: Entry<T>, error: string): void {
    const dead: DeadLetter<T> = {
      id: entry.id,
      data: entry.data,
      groupKey: entry.groupKey,
      attempts: entry.attemptsMade,
      error,
      failedAt: Date.now(),
    };
    this.#dead.set(entry.id, dead);
    if (this.#dead.size > MAX_DEAD_LETTERS) this.#dead.delete(this.#dead.keys().next().value!);
    try {
      this.#options.onDeadLetter?.(dead);
    } catch (callbackError) {
      this.#onError(toError(callbackError));
    }
  }

  /** Lets the next job of a finished job's group run. */
  #advance(entry: Entry<T>): void {
    if (entry.groupKey === undefined) return;
    const group = this.#groups.get(entry.groupKey)!;
    group.shift();
    if (group.length === 0) {
      this.#groups.delete(entry.groupKey);
    } else {
      this.#schedule(group.peek()!);
    }
  }
}
