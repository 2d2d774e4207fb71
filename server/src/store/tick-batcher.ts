interface Pending<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

/**
 * Coalesces the calls made in the same event-loop turn, per key, into one call of `run` with all
 * their items (at most `max`): one database round trip where there would have been many. `run`
 * returns one result per item, in order; when it throws for a batch of several, each item is
 * retried on its own so that one bad item cannot fail its neighbours.
 */
export class TickBatcher<T, R> {
  readonly #run: (key: string, items: T[]) => Promise<R[]>;
  readonly #max: number;
  readonly #pending = new Map<string, Pending<T, R>[]>();
  #scheduled = false;

  constructor(run: (key: string, items: T[]) => Promise<R[]>, max: number) {
    this.#run = run;
    this.#max = max;
  }

  add(key: string, item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      const list = this.#pending.get(key) ?? [];
      list.push({ item, resolve, reject });
      this.#pending.set(key, list);
      if (list.length >= this.#max) {
        this.#pending.delete(key);
        void this.#execute(key, list);
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batches = [...this.#pending];
    this.#pending.clear();
    for (const [key, list] of batches) void this.#execute(key, list);
  }

  async #execute(key: string, list: Pending<T, R>[]): Promise<void> {
    try {
      const results = await this.#run(key, list.map((p) => p.item));
      list.forEach((p, i) => p.resolve(results[i]));
    } catch (err) {
      if (list.length === 1) {
        list[0].reject(err);
        return;
      }
      await Promise.all(list.map((p) => this.#execute(key, [p])));
    }
  }
}
