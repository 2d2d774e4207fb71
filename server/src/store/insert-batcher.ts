import type { Sql } from './database.ts';
import { quote } from './columns.ts';
import { historyTable, tableColumns } from './schema.ts';
import { TickBatcher } from './tick-batcher.ts';

const MAX_ROWS = 200;

/**
 * Single-resource creates arriving in the same event-loop turn become one multi-row INSERT
 * (current, history and outbox rows in one statement, hence one commit). Each caller still gets
 * its answer only after its own row is committed.
 */
export function insertBatcher(sql: Sql): TickBatcher<unknown[], undefined> {
  return new TickBatcher<unknown[], undefined>(async (type, rows) => {
    await sql.query(insertRowsSql(type, rows.length), rows.flat());
    return rows.map(() => undefined);
  }, MAX_ROWS);
}

const sqlCache = new Map<string, string>();

/**
 * One statement inserting n rows (given in `tableColumns` order) into a type's current and history
 * tables and the outbox; with `journal` false, into the current table only (the audit trail's
 * records: never changed, so no history, and seen by no subscriber or bot).
 */
export function insertRowsSql(type: string, n: number, journal = true): string {
  const key = `${type}|${n}|${journal}`;
  let sql = sqlCache.get(key);
  if (!sql) {
    sql = buildInsertRows(type, n, journal);
    sqlCache.set(key, sql);
  }
  return sql;
}

function buildInsertRows(type: string, n: number, journal: boolean): string {
  const columns = tableColumns(type);
  const width = columns.map((c) => c.name);
  const at = (name: string, row: number): string => `$${row * width.length + width.indexOf(name) + 1}`;
  const rows = Array.from({ length: n }, (_, r) => `(${width.map((_, i) => `$${r * width.length + i + 1}`).join(', ')})`);
  const history = Array.from({ length: n }, (_, r) =>
    `(${at('id', r)}, ${at('version_id', r)}, ${at('last_updated', r)}, false, ${at('content', r)})`,
  );
  const outbox = Array.from({ length: n }, (_, r) => `('${type}', ${at('id', r)}, ${at('version_id', r)}, 'create')`);
  return (
    (journal
      ? `WITH h AS (INSERT INTO ${quote(historyTable(type))} (id, version_id, last_updated, deleted, content) VALUES ${history.join(', ')}), ` +
        `o AS (INSERT INTO change_outbox (resource_type, id, version_id, interaction) VALUES ${outbox.join(', ')}) `
      : '') +
    `INSERT INTO ${quote(type)} (${width.map(quote).join(', ')}) VALUES ${rows.join(', ')}`
  );
}
