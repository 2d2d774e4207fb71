import { BullMqQueue, connectRedis, DEFAULT_GROUP_TIMING } from './bullmq-queue.ts';
import { MemoryQueue } from './memory-queue.ts';

/** Exponential backoff between attempts: min(capMs, baseMs · 2^(attempt−1)), jittered. */
export interface Backoff {
  baseMs: number;
  capMs: number;
}

export interface EnqueueOptions {
  /** Deduplicates: while a job with this id exists (waiting, delayed, running or dead-lettered), enqueue is a no-op. */
  jobId?: string;
  delayMs?: number;
  /** Total attempts before the job is dead-lettered (1 = no retry). */
  attempts?: number;
  backoff?: Backoff;
  /** Jobs sharing a key run one at a time in enqueue order, across all workers; a retrying job holds back the rest. */
  groupKey?: string;
}

export interface JobContext<T> {
  id: string;
  data: T;
  /** 1 on the first run. */
  attempt: number;
  groupKey?: string;
  /** Aborted when close() gives up waiting; the job goes back to the queue (BullMQ) or is dropped (in-process). */
  signal: AbortSignal;
}

export type JobHandler<T> = (job: JobContext<T>) => Promise<void>;

export interface DeadLetter<T> {
  id: string;
  data: T;
  groupKey?: string;
  attempts: number;
  /** The last attempt's error message. */
  error: string;
  failedAt: number;
}

export interface ProcessOptions<T> {
  concurrency?: number;
  /** Called in the process that ran the last attempt, after the job is recorded as dead. */
  onDeadLetter?: (job: DeadLetter<T>) => void;
}

export interface ScheduleOptions {
  /** Per run, as for enqueue. */
  attempts?: number;
  backoff?: Backoff;
}

export interface CloseOptions {
  /** How long in-flight jobs may run on before they are aborted. */
  timeoutMs?: number;
}

export interface JobQueue<T> {
  readonly name: string;
  /** Resolves to the job id (the given jobId or a generated one). */
  enqueue(data: T, options?: EnqueueOptions): Promise<string>;
  /** Several jobs, in order, as enqueue would add them one after the other; in a few round trips on Redis. */
  enqueueMany(jobs: readonly { data: T; options?: EnqueueOptions }[]): Promise<string[]>;
  /**
   * Runs a job with `data` every `everyMs` under `scheduleId`, the first at once: one job per
   * period however many processes share the queue and schedule it (a BullMQ job scheduler on Redis,
   * a timer in-process). Scheduling the same id again replaces the schedule.
   */
  schedule(scheduleId: string, everyMs: number, data: T, options?: ScheduleOptions): Promise<void>;
  /** Starts consuming; one handler per queue instance. */
  process(handler: JobHandler<T>, options?: ProcessOptions<T>): void;
  /** Jobs enqueued and not yet done or dead: waiting, delayed or running (on Redis, not those held behind their group). */
  pending(): Promise<number>;
  /** The group's jobs not yet done or dead, its head (running, waiting or retrying) included. */
  groupSize(groupKey: string): Promise<number>;
  /** Most recent first. */
  deadLetters(limit?: number): Promise<DeadLetter<T>[]>;
  /** Stops taking jobs and waits for in-flight ones up to the timeout. */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * A queue whose jobs live only as long as the process (the in-process one): what hands it work it
 * must not lose keeps that work elsewhere until `settled` says the job is done with.
 */
export interface VolatileQueue<T> extends JobQueue<T> {
  /** Resolves once the job has run to success or been dead-lettered; never, if the queue closes first. */
  settled(jobId: string): Promise<void>;
}

export const isVolatile = <T>(queue: JobQueue<T>): queue is VolatileQueue<T> => 'settled' in queue;

export interface QueueOptions {
  /**
   * On Redis, how long a job waiting behind its group's head sleeps before checking its turn itself
   * (default 5 min), and how long a head whose job does not exist stays before it is skipped (default
   * 1 min, at most this). A waiting job is woken as soon as its head finishes; this bounds its wait
   * when a process died between two steps: after finishing the head but before waking the next job,
   * or after claiming a place for a job it never added and whose id is not enqueued again. Short for
   * groups whose jobs are brief.
   */
  groupRecheckMs?: number;
}

export interface QueueFactory {
  /** The same name returns the same queue, so producers and the worker in one process share it; its options are the first call's. */
  queue<T>(name: string, options?: QueueOptions): JobQueue<T>;
  close(options?: CloseOptions): Promise<void>;
}

export interface QueueFactoryConfig {
  redisUrl?: string;
  prefix?: string;
  /** BullMQ: how long a crashed worker's jobs stay claimed before another worker runs them (default 30 s). */
  lockMs?: number;
  /** Infrastructure errors (Redis connection, onDeadLetter throwing); job failures go to retries instead. */
  onError?: (error: Error) => void;
}

/**
 * BullMQ on Redis when redisUrl is set (queues shared by every worker process),
 * otherwise in-process queues for the embedded single-process mode.
 */
export function createQueueFactory(config: QueueFactoryConfig = {}): QueueFactory {
  const onError = config.onError ?? ((error: Error) => console.error(error));
  const redis = config.redisUrl ? connectRedis(config.redisUrl, onError) : undefined;
  const prefix = config.prefix ?? 'vigil';
  const queues = new Map<string, JobQueue<unknown>>();
  let closed = false;
  return {
    queue<T>(name: string, options: QueueOptions = {}): JobQueue<T> {
      if (closed) throw new Error('queue factory is closed');
      // BullMQ builds Redis keys as prefix:name:…; the rule applies to both so names stay portable.
      if (!name || name.includes(':')) throw new Error(`queue name must be non-empty without ':', not "${name}"`);
      let queue = queues.get(name);
      if (!queue) {
        const recheckMs = options.groupRecheckMs;
        const groupTiming = recheckMs === undefined ? undefined : { parkMs: recheckMs, staleMs: Math.min(recheckMs, DEFAULT_GROUP_TIMING.staleMs) };
        queue = redis ? new BullMqQueue(name, { redis, prefix, onError, lockMs: config.lockMs, groupTiming }) : new MemoryQueue(name, { onError });
        queues.set(name, queue);
      }
      return queue as JobQueue<T>;
    },
    async close(options?: CloseOptions): Promise<void> {
      if (closed) return;
      closed = true;
      const open = [...queues.values()];
      queues.clear();
      await Promise.all(open.map((queue) => queue.close(options)));
      await redis?.quit();
    },
  };
}
