import { setTimeout as delay } from 'node:timers/promises';
import { isVolatile, type JobQueue, type VolatileQueue } from '../jobs/queue.ts';
import type { Database } from '../store/database.ts';
import type { ChangeFeed } from '../store/events.ts';

/** One committed change, as the outbox recorded it. */
export interface Change {
  resourceType: string;
  id: string;
  versionId: number;
  interaction: 'create' | 'update' | 'delete';
}

/** The changes one drain took from the outbox, in commit (seq) order. */
export interface ChangeBatch {
  changes: Change[];
}

/** A queue each drained batch goes to; batches sharing a group key are processed one at a time, in drain order. */
export interface DrainTarget {
  queue: JobQueue<ChangeBatch>;
  groupKey?: string;
}

export interface OutboxOptions {
  /** Rows taken per transaction. */
  batch?: number;
  pollMs: number;
  /** How long a wake-up waits for further commits before draining: fewer, larger batches under load. */
  gatherMs?: number;
  /** How long a drain may wait for a grouped target's backlog to shrink (see PACE_MS). */
  holdMs?: number;
  onError: (error: Error) => void;
}

/**
 * Each drain is a transaction plus an enqueue per target, and every batch costs each consumer a
 * round of reads: a commit waits this long for company, which costs a notification as much latency.
 */
const GATHER_MS = 10;
/**
 * A grouped target's batches are taken one at a time: while one runs and another waits behind it,
 * a further batch would only queue. The drain then waits (polling every PACE_MS, by default for at
 * most HOLD_MS, so that a consumer that keeps failing holds back the other targets only so long)
 * and takes what gathered as one larger batch: a busy consumer gets fewer, larger batches instead
 * of a backlog, and the commits behind it wait less.
 */
const PACE_MS = 5;
const HOLD_MS = 1_000;
/** Held for the drain's transaction: replicas drain one after the other, so batches reach the queues in seq order. */
const DRAIN_LOCK = 0x76_69_67_69;
const DRAIN_SQL = `DELETE FROM change_outbox WHERE seq IN (SELECT seq FROM change_outbox ORDER BY seq LIMIT $1)
  RETURNING seq, resource_type, id, version_id, interaction`;
/** For in-process queues, which a crash empties: rows are only marked taken, and deleted once every target is done with them. */
const TAKE_SQL = `UPDATE change_outbox SET taken = true WHERE seq IN (SELECT seq FROM change_outbox WHERE NOT taken ORDER BY seq LIMIT $1)
  RETURNING seq, resource_type, id, version_id, interaction`;

/**
 * Moves committed changes from `change_outbox` to the queues, oldest first, one job per batch and
 * queue. Rows are deleted in the transaction that enqueues them, so a failed enqueue leaves them for
 * the next drain. A crash between enqueue and commit drains them again: as the same batch, its job
 * id (first and last seq) is absorbed while that job is pending; otherwise the job ids of the
 * deliveries and bot runs absorb the repeats. The in-process change feed only wakes the drainer
 * early; the poll picks up what other replicas wrote.
 *
 * In-process queues (embedded mode, one process) lose their jobs with the process: there the rows
 * are marked taken instead, and deleted once every target has run the batch. A new process starts
 * by taking back what its predecessor had taken, so a change committed but not yet matched (nor
 * fed to the bots) survives a crash.
 */
export class OutboxDrainer {
  readonly #db: Database;
  readonly #targets: readonly DrainTarget[];
  readonly #batch: number;
  readonly #gatherMs: number;
  readonly #holdMs: number;
  readonly #onError: (error: Error) => void;
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;
  #running?: Promise<void>;
  /** Embedded mode: the in-process queues, whose batches' rows are released once they settle. */
  readonly #volatile?: readonly VolatileQueue<ChangeBatch>[];
  #reclaimed = false;
  #again = false;
  #stopped = false;

  constructor(db: Database, feed: ChangeFeed, targets: readonly DrainTarget[], options: OutboxOptions) {
    this.#db = db;
    this.#targets = targets;
    const volatile = targets.map(({ queue }) => queue).filter(isVolatile);
    if (volatile.length === targets.length) this.#volatile = volatile;
    this.#batch = options.batch ?? 500;
    this.#gatherMs = options.gatherMs ?? GATHER_MS;
    this.#holdMs = options.holdMs ?? HOLD_MS;
    this.#onError = options.onError;
    this.#unsubscribe = feed.subscribe(() => this.wake());
    this.#timer = setInterval(() => this.wake(), options.pollMs);
    this.wake();
  }

  /** Drains until the outbox is empty; calls made meanwhile fold into one more pass. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = delay(this.#gatherMs).then(() => this.#loop()).finally(() => {
      this.#running = undefined;
      if (this.#again) this.wake();
    });
  }

  /** One transaction: takes up to `batch` rows and enqueues them; resolves to the number taken. */
  async drainOnce(): Promise<number> {
    if (this.#volatile && !this.#reclaimed) {
      // what a previous process took and never finished: its queues died with it
      await this.#db.query('UPDATE change_outbox SET taken = false WHERE taken');
      this.#reclaimed = true;
    }
    const { taken, jobId } = await this.#db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [DRAIN_LOCK]);
      const rows = await tx.query<{ seq: string | number; resource_type: string; id: string; version_id: number; interaction: Change['interaction'] }>(
        this.#volatile ? TAKE_SQL : DRAIN_SQL,
        [this.#batch],
      );
      if (rows.length === 0) return { taken: [], jobId: '' };
      rows.sort((a, b) => Number(a.seq) - Number(b.seq));
      const changes = rows.map((row): Change => ({ resourceType: row.resource_type, id: row.id, versionId: Number(row.version_id), interaction: row.interaction }));
      const jobId = `${rows[0].seq}-${rows[rows.length - 1].seq}`;
      await Promise.all(this.#targets.map(({ queue, groupKey }) => queue.enqueue({ changes }, { jobId, groupKey })));
      return { taken: rows.map((r) => String(r.seq)), jobId };
    });
    if (this.#volatile && taken.length) this.#releaseWhenSettled(jobId, taken);
    return taken.length;
  }

  /** Deletes the taken rows once every target has run (or dead-lettered) their batch; a crash before leaves them to the next process. */
  #releaseWhenSettled(jobId: string, seqs: string[]): void {
    Promise.all((this.#volatile ?? []).map((queue) => queue.settled(jobId)))
      .then(() => this.#db.query('DELETE FROM change_outbox WHERE seq = ANY($1::bigint[])', [seqs]))
      .catch((error: unknown) => this.#onError(error as Error));
  }

  /** Waits while a grouped target has a batch waiting behind the one it runs (see PACE_MS). */
  async #paced(): Promise<void> {
    const grouped = this.#targets.filter((t) => t.groupKey !== undefined);
    const until = Date.now() + this.#holdMs;
    while (!this.#stopped && Date.now() < until) {
      const sizes = await Promise.all(grouped.map(({ queue, groupKey }) => queue.groupSize(groupKey!)));
      if (sizes.every((n) => n < 2)) return;
      await delay(PACE_MS);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#unsubscribe();
    await this.#running;
  }

  async #loop(): Promise<void> {
    this.#again = false;
    try {
      for (;;) {
        await this.#paced();
        if (this.#stopped || (await this.drainOnce()) < this.#batch) break;
      }
    } catch (error) {
      this.#onError(error as Error);
    }
  }
}
