import type { JobQueue } from '../jobs/queue.ts';
import type { Database } from '../store/database.ts';
import type { ChangeFeed } from '../store/events.ts';

/** One committed change, as the outbox recorded it. */
export interface Change {
  resourceType: string;
  id: string;
  versionId: number;
  interaction: 'create' | 'update' | 'delete';
}

export interface OutboxOptions {
  /** Rows taken per transaction. */
  batch?: number;
  pollMs: number;
  onError: (error: Error) => void;
}

const DRAIN_SQL = `DELETE FROM change_outbox WHERE seq IN (SELECT seq FROM change_outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
  RETURNING seq, resource_type, id, version_id, interaction`;

/** The job id of a change: a re-drain after a crash between enqueue and commit is absorbed by the queue. */
export const changeJobId = (c: Change): string => `${c.resourceType}/${c.id}/${c.versionId}`;

/**
 * Moves committed changes from `change_outbox` to the match queue, oldest first. Rows are deleted
 * in the transaction that enqueues them, so a failed enqueue leaves them for the next drain, and
 * SKIP LOCKED lets several worker replicas drain side by side. The in-process change feed only
 * wakes the drainer early; the poll picks up what other replicas wrote.
 */
export class OutboxDrainer {
  readonly #db: Database;
  readonly #queue: JobQueue<Change>;
  readonly #batch: number;
  readonly #onError: (error: Error) => void;
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;
  #running?: Promise<void>;
  #again = false;
  #stopped = false;

  constructor(db: Database, feed: ChangeFeed, queue: JobQueue<Change>, options: OutboxOptions) {
    this.#db = db;
    this.#queue = queue;
    this.#batch = options.batch ?? 500;
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
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      if (this.#again) this.wake();
    });
  }

  /** One transaction: takes up to `batch` rows and enqueues them; resolves to the number taken. */
  async drainOnce(): Promise<number> {
    return this.#db.transaction(async (tx) => {
      const rows = await tx.query<{ seq: string | number; resource_type: string; id: string; version_id: number; interaction: Change['interaction'] }>(
        DRAIN_SQL,
        [this.#batch],
      );
      rows.sort((a, b) => Number(a.seq) - Number(b.seq));
      for (const row of rows) {
        const change: Change = { resourceType: row.resource_type, id: row.id, versionId: Number(row.version_id), interaction: row.interaction };
        // grouped per resource: versions of one resource are matched, hence delivered, in order
        await this.#queue.enqueue(change, { jobId: changeJobId(change), groupKey: `${change.resourceType}/${change.id}` });
      }
      return rows.length;
    });
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
      while (!this.#stopped && (await this.drainOnce()) === this.#batch);
    } catch (error) {
      this.#onError(error as Error);
    }
  }
}
