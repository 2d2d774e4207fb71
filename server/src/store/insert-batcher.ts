import type { Sql } from './database.ts';
import { quote } from './columns.ts';
import { historyTable, tableColumns } from './schema.ts';

interface Pending {
  row: unknown[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

const MAX_ROWS = 200;

/**
 * Coalesces the single-resource creates that arrive in the same event-loop turn into one
 * multi-row INSERT (current and history rows in one statement, hence one commit). Each caller
 * still gets its own answer only after its row is committed; a failing batch is retried row by
 * row so that one bad row cannot fail its neighbours.
 */
export class InsertBatcher {
  readonly #sql: Sql;
  readonly #pending = new Map<string, Pending[]>();
  #scheduled = false;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  insert(type: string, row: unknown[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const list = this.#pending.get(type) ?? [];
      list.push({ row, resolve, reject });
      this.#pending.set(type, list);
      if (list.length >= MAX_ROWS) {
        this.#pending.delete(type);
        void this.#write(type, list);
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
    for (const [type, list] of batches) void this.#write(type, list);
  }

  async #write(type: string, list: Pending[]): Promise<void> {
    try {
      await this.#sql.query(insertRowsSql(type, list.length), list.flatMap((p) => p.row));
      for (const p of list) p.resolve();
    } catch (err) {
      if (list.length === 1) {
        list[0].reject(err);
        return;
      }
      await Promise.all(list.map((p) => this.#write(type, [p])));
    }
  }
}

const sqlCache = new Map<string, string>();

/** One statement inserting n rows (given in `tableColumns` order) into a type's current and history tables and the outbox. */
export function insertRowsSql(type: string, n: number): string {
  const key = `${type}|${n}`;
  let sql = sqlCache.get(key);
  if (!sql) {
    sql = buildInsertRows(type, n);
    sqlCache.set(key, sql);
  }
  return sql;
}

function buildInsertRows(type: string, n: number): string {
  const columns = tableColumns(type);
  const width = columns.map((c) => c.name);
  const at = (name: string, row: number): string => `$${row * width.length + width.indexOf(name) + 1}`;
  const rows = Array.from({ length: n }, (_, r) => `(${width.map((_, i) => `$${r * width.length + i + 1}`).join(', ')})`);
  const history = Array.from({ length: n }, (_, r) =>
    `(${at('id', r)}, ${at('version_id', r)}, ${at('last_updated', r)}, false, ${at('content', r)})`,
  );
  const outbox = Array.from({ length: n }, (_, r) => `('${type}', ${at('id', r)}, ${at('version_id', r)}, 'create')`);
  return (
    `WITH h AS (INSERT INTO ${quote(historyTable(type))} (id, version_id, last_updated, deleted, content) VALUES ${history.join(', ')}), ` +
    `o AS (INSERT INTO change_outbox (resource_type, id, version_id, interaction) VALUES ${outbox.join(', ')}) ` +
    `INSERT INTO ${quote(type)} (${width.map(quote).join(', ')}) VALUES ${rows.join(', ')}`
  );
}
