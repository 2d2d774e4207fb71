import { createHash } from 'node:crypto';
import { backoffDelay, toError } from '../jobs/options.ts';
import type { DeadLetter, EnqueueOptions, JobContext, JobQueue } from '../jobs/queue.ts';
import type { Logger } from '../ops/logger.ts';
import type { SubscriptionConfig } from './config.ts';
import type { Deliverer, Delivery } from './delivery.ts';

/**
 * A matched batch's deliveries make their first attempt together, in one job per shard of
 * subscriptions, instead of one queue job each: the job and its group bookkeeping cost Redis ~120 µs
 * and the worker ~130 µs, more than the POST. A delivery that fails, or outlasts FIRST_ATTEMPT_MS,
 * becomes its subscription's own queued job (retried with backoff, dead-lettered after the last
 * attempt), and so does one whose subscription still has deliveries queued, behind them.
 *
 * Order per subscription: a subscription always falls in the same shard, a shard's jobs run one at
 * a time in match order, and a job finishes only once each of its deliveries was sent or queued. A
 * later job thus finds the subscription's queue non-empty (and queues behind it) unless everything
 * before was sent.
 */
export interface FanOut {
  deliveries: QueuedDelivery[];
}

/** A delivery with the job id it is queued under if its first attempt fails (re-matched batches are absorbed by it). */
export interface QueuedDelivery {
  delivery: Delivery;
  jobId: string;
}

/** Shards run in parallel (each one job at a time), across workers. */
export const FAN_OUT_SHARDS = 8;
/** A first attempt's deadline: longer waits are left to the subscription's own queued job. */
const FIRST_ATTEMPT_MS = 2_000;
/**
 * A first attempt that held its shard this long sidelines its subscription: its deliveries skip
 * fan-outs for SIDELINED_MS (in this process), so a slow endpoint holds its shard once.
 */
const SLOW_ATTEMPT_MS = 1_000;
const SIDELINED_MS = 5 * 60_000;

/** One fan-out job per shard that the deliveries touch. */
export function fanOutJobs(deliveries: readonly QueuedDelivery[], config: SubscriptionConfig): { data: FanOut; options: EnqueueOptions }[] {
  const byShard = new Map<number, QueuedDelivery[]>();
  for (const d of deliveries) {
    const shard = shardOf(d.delivery.subscriptionId);
    const list = byShard.get(shard);
    if (list) list.push(d);
    else byShard.set(shard, [d]);
  }
  return [...byShard].map(([shard, list]) => ({
    data: { deliveries: list },
    options: { jobId: `fan-out/${list[0].jobId}+${list.length}`, groupKey: `fan-out/${shard}`, attempts: config.attempts, backoff: config.backoff },
  }));
}

function shardOf(subscriptionId: string): number {
  return createHash('sha1').update(subscriptionId).digest().readUInt32BE(0) % FAN_OUT_SHARDS;
}

export class FanOutHandler {
  readonly #deliverer: Pick<Deliverer, 'deliver' | 'onDeadLetter'>;
  readonly #deliveries: JobQueue<Delivery>;
  readonly #config: SubscriptionConfig;
  readonly #logger: Logger;
  /** Subscription → until when it is sidelined. */
  readonly #sidelined = new Map<string, number>();

  constructor(deliverer: Pick<Deliverer, 'deliver' | 'onDeadLetter'>, deliveries: JobQueue<Delivery>, config: SubscriptionConfig, logger: Logger) {
    this.#deliverer = deliverer;
    this.#deliveries = deliveries;
    this.#config = config;
    this.#logger = logger;
  }

  handle = async (job: JobContext<FanOut>): Promise<void> => {
    const { deliveries } = job.data;
    const waiting = await Promise.all(deliveries.map(({ delivery }) => this.#isSidelined(delivery.subscriptionId) || this.#deliveries.groupSize(delivery.subscriptionId).then((n) => n > 0)));
    const queued: { data: Delivery; options: EnqueueOptions }[] = [];
    await Promise.all(deliveries.map(async (d, i) => {
      if (waiting[i]) {
        queued.push(this.#queued(d, 0));
        return;
      }
      const started = Date.now();
      try {
        await this.#deliverer.deliver(d.delivery, job.signal, FIRST_ATTEMPT_MS);
      } catch (err) {
        if (this.#config.attempts > 1) queued.push(this.#queued(d, 1));
        else this.#deliverer.onDeadLetter({ id: d.jobId, data: d.delivery, attempts: 1, error: toError(err).message, failedAt: Date.now() });
      } finally {
        if (Date.now() - started >= SLOW_ATTEMPT_MS) this.#sideline(d.delivery.subscriptionId);
      }
    }));
    if (queued.length) await this.#deliveries.enqueueMany(queued);
  };

  /** Infrastructure failures only (its deliveries' own failures are queued): each delivery is given up as after its last attempt. */
  onDeadLetter = (dead: DeadLetter<FanOut>): void => {
    this.#logger.error({ job: dead.id, error: dead.error }, 'fan-out of subscription deliveries given up');
    for (const { delivery, jobId } of dead.data.deliveries) this.#deliverer.onDeadLetter({ ...dead, id: jobId, data: delivery });
  };

  #queued({ delivery, jobId }: QueuedDelivery, attempted: number): { data: Delivery; options: EnqueueOptions } {
    const { attempts, backoff } = this.#config;
    return {
      data: attempted ? { ...delivery, attempted } : delivery,
      options: { jobId, groupKey: delivery.subscriptionId, attempts: attempts - attempted, backoff, ...(attempted ? { delayMs: backoffDelay(attempted, backoff) } : {}) },
    };
  }

  #sideline(subscriptionId: string): void {
    const now = Date.now();
    if (this.#sidelined.size >= 10_000) for (const [id, until] of this.#sidelined) if (until <= now) this.#sidelined.delete(id);
    this.#sidelined.set(subscriptionId, now + SIDELINED_MS);
  }

  #isSidelined(subscriptionId: string): boolean {
    const until = this.#sidelined.get(subscriptionId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#sidelined.delete(subscriptionId);
    return false;
  }
}
