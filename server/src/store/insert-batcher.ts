import type { Resource } from '@medplum/fhirtypes';
import type { Sql } from './database.ts';
import { type Column, quote } from './columns.ts';
import { extractIndex, type IndexRow } from './extract.ts';
import { historyTable, tableColumns } from './schema.ts';
import { TickBatcher } from './tick-batcher.ts';

const MAX_ROWS = 200;

/**
 * Single-resource creates arriving in the same event-loop turn become one multi-row INSERT
 * (current, history and outbox rows in one statement, hence one commit). Each caller still gets
 * its answer only after its own row is committed. Items are `rowJson` texts.
 */
export function insertBatcher(sql: Sql): TickBatcher<string, undefined> {
  return new TickBatcher<string, undefined>(async (type, rows) => {
    await insertRows(sql, type, rows);
    return rows.map(() => undefined);
  }, MAX_ROWS);
}

/**
 * Inserts rows (`rowJson` texts) of one type into its current and history tables and the outbox;
 * with `journal` false, into the current table only (the audit trail's records: never changed, so
 * no history, and seen by no subscriber or bot).
 */
export async function insertRows(sql: Sql, type: string, rows: string[], journal = true): Promise<void> {
  await insertRowsWith(sql, insertRowsSql(type, journal), rows);
}

/** `insertRows` with its statement (`insertRowsSql`) at hand: for a thread that has not loaded the FHIR model. */
export async function insertRowsWith(sql: Sql, statement: string, rows: string[]): Promise<void> {
  if (rows.length) await sql.query(statement, [wellFormed(`[${rows.join(',')}]`)]);
}

/**
 * A table row as a JSON object keyed by column (null columns left out), for `insertRows`. All rows
 * travel as one JSON parameter rather than one parameter per column and row: pg serialised each of
 * the ~56 values of a row on its own (arrays element by element) and PostgreSQL bound them one by
 * one, and every batch size was a statement text of its own. `content` is `JSON.stringify(resource)`,
 * sent as a JSON string: as jsonb, an embedded object would come back with its keys reordered.
 */
export function rowJson(
  resource: Resource, content: string, baseUrl: string, index: IndexRow = extractIndex(resource, baseUrl, content), columns: Column[] = tableColumns(resource.resourceType),
): string {
  const meta = resource.meta as { versionId: string; lastUpdated: string };
  let json = `{"id":${JSON.stringify(resource.id)},"version_id":${Number(meta.versionId)},"last_updated":${JSON.stringify(meta.lastUpdated)},"deleted":false,"content":${JSON.stringify(content)}`;
  for (const c of columns) {
    const value = index[c.name];
    if (value === undefined || value === null) continue;
    // composite columns already hold their jsonb text
    json += `,${JSON.stringify(c.name)}:${c.sqlType === 'jsonb' ? (value as string) : JSON.stringify(value)}`;
  }
  return `${json}}`;
}

/**
 * JSON.stringify writes a lone surrogate as a `\udXXX` escape, which PostgreSQL refuses to turn
 * into text; it becomes U+FFFD, as pg makes of it in a text parameter. (An escape preceded by an
 * odd number of backslashes is text that reads `\u…`, not an escape.)
 */
function wellFormed(json: string): string {
  return json.includes('\\ud') ? json.replace(/(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g, '$1\\ufffd') : json;
}

const sqlCache = new Map<string, string>();

/** One statement for any number of rows: prepared once per connection. */
export function insertRowsSql(type: string, journal: boolean): string {
  const key = `${type}|${journal}`;
  let sql = sqlCache.get(key);
  if (!sql) {
    const columns = tableColumns(type).map((c) => quote(c.name)).join(', ');
    // jsonb, not json: json_populate_recordset took ~47 us of PostgreSQL per Observation row to
    // parse and map, jsonb_populate_recordset ~24
    const rows = `SELECT ${columns} FROM jsonb_populate_recordset(NULL::${quote(type)}, $1::jsonb)`;
    sql = journal
      ? `WITH r AS (${rows}), ` +
        `h AS (INSERT INTO ${quote(historyTable(type))} (id, version_id, last_updated, deleted, content) SELECT id, version_id, last_updated, false, content FROM r), ` +
        `o AS (INSERT INTO change_outbox (resource_type, id, version_id, interaction) SELECT '${type}', id, version_id, 'create' FROM r) ` +
        `INSERT INTO ${quote(type)} (${columns}) SELECT ${columns} FROM r`
      : `INSERT INTO ${quote(type)} (${columns}) ${rows}`;
    sqlCache.set(key, sql);
  }
  return sql;
}
