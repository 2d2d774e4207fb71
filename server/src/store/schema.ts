import { getResourceTypeList, getSearchParams, loadDefinitions } from '../definitions.ts';
import { COMPARTMENTS, DATE_RANGES, REFERENCE_IDENTIFIER, STRING_EXACT, TOKEN_TEXT, paramColumns, quote, type Column } from './columns.ts';

/**
 * The resource tables, generated from the R4 SearchParameter definitions: one table per type with
 * the current version's JSON and a typed column set per search parameter, plus a history table.
 */

/** Composite B-tree indexes for the monitoring hot path, e.g. Observation?patient=…&code=…&_sort=-date. */
const HOT_PATH_INDEXES: Record<string, string[][]> = {
  Observation: [['patient', 'date_start'], ['subject', 'date_start'], ['device', 'date_start']],
};

const FIXED: Column[] = [
  { name: 'id', sqlType: 'text primary key' },
  { name: 'version_id', sqlType: 'integer not null' },
  { name: 'last_updated', sqlType: 'timestamptz not null', index: 'btree' },
  { name: 'deleted', sqlType: 'boolean not null default false' },
  { name: 'content', sqlType: 'text not null' },
  { name: COMPARTMENTS, sqlType: 'text[]', index: 'gin' },
  { name: TOKEN_TEXT, sqlType: 'text[]' },
  { name: STRING_EXACT, sqlType: 'text[]' },
  { name: REFERENCE_IDENTIFIER, sqlType: 'text[]', index: 'gin' },
  { name: DATE_RANGES, sqlType: 'jsonb' },
];

const columnsByType = new Map<string, Column[]>();

/** The columns of a resource table, in table order. */
export function tableColumns(type: string): Column[] {
  let columns = columnsByType.get(type);
  if (!columns) {
    columns = [...FIXED, ...[...getSearchParams(type).values()].flatMap(paramColumns)];
    columnsByType.set(type, columns);
  }
  return columns;
}

export const historyTable = (type: string): string => `${type}_History`;

export function resourceTableDdl(type: string): string[] {
  const table = quote(type);
  const columns = tableColumns(type);
  const ddl = [
    `CREATE TABLE IF NOT EXISTS ${table} (${columns.map((c) => `${quote(c.name)} ${c.sqlType}`).join(', ')})`,
    `CREATE TABLE IF NOT EXISTS ${quote(historyTable(type))} (id text not null, version_id integer not null, ` +
      `last_updated timestamptz not null, deleted boolean not null, content text, primary key (id, version_id))`,
    `CREATE INDEX IF NOT EXISTS ${quote(`${type}_History_last_updated`)} ON ${quote(historyTable(type))} (last_updated)`,
  ];
  for (const c of columns) {
    if (c.index && !ledByComposite(type, c)) {
      // Most parameters are empty on most rows; partial indexes skip those rows entirely, and
      // PostgreSQL still uses them because every search operator implies IS NOT NULL.
      const partial = FIXED.includes(c) ? '' : ` WHERE ${quote(c.name)} IS NOT NULL`;
      ddl.push(`CREATE INDEX IF NOT EXISTS ${quote(`${type}_${c.name}_idx`)} ON ${table} USING ${c.index} (${quote(c.name)})${partial}`);
    }
  }
  for (const cols of HOT_PATH_INDEXES[type] ?? []) {
    ddl.push(`CREATE INDEX IF NOT EXISTS ${quote(`${type}_${cols.join('_')}_idx`)} ON ${table} (${cols.map(quote).join(', ')})`);
  }
  return ddl;
}

/**
 * A single-column B-tree whose column leads a hot-path index only repeats it: the composite answers
 * the same searches, and each index costs every insert (these three were an eighth of an Observation
 * row's insert time in PostgreSQL).
 */
const ledByComposite = (type: string, c: Column): boolean => c.index === 'btree' && (HOT_PATH_INDEXES[type] ?? []).some(([first]) => first === c.name);

/** Drops what `ledByComposite` no longer creates from databases made before. */
export function redundantIndexDdl(): string[] {
  loadDefinitions();
  return Object.keys(HOT_PATH_INDEXES).flatMap((type) =>
    tableColumns(type).filter((c) => ledByComposite(type, c)).map((c) => `DROP INDEX IF EXISTS ${quote(`${type}_${c.name}_idx`)}`),
  );
}

/**
 * A resource row holds its JSON and its search columns: ~2.2 KB for a vital sign or an AuditEvent,
 * past PostgreSQL's 2 KB TOAST threshold, so by default every insert compresses the JSON or moves a
 * value out of line (a second heap and index insert) and every read fetches it back. Rows up to a
 * page stay inline and uncompressed instead; only larger ones are toasted.
 */
export function inlineRowsDdl(): string[] {
  loadDefinitions();
  return getResourceTypeList().map((type) => `ALTER TABLE ${quote(type)} SET (toast_tuple_target = 8160)`);
}

/**
 * Identifier indexes answer the write path's idempotency lookups (device readings, conditional
 * creates). With GIN's fast update, new entries queue in a pending list that every search scans
 * linearly: under sustained ingest, looking up a batch's 500 identifiers took ~460 ms instead of
 * ~7 ms. These indexes take their entries directly instead.
 */
export function identifierIndexDdl(): string[] {
  loadDefinitions();
  return getResourceTypeList()
    .filter((type) => tableColumns(type).some((c) => c.name === 'identifier' && c.index === 'gin'))
    .flatMap((type) => {
      const index = quote(`${type}_identifier_idx`);
      // and move what is already pending into the index proper (else it waits for a vacuum)
      return [`ALTER INDEX ${index} SET (fastupdate = off)`, `SELECT gin_clean_pending_list('${index}'::regclass)`];
    });
}

/**
 * `date_span` holds, per type and date parameter, the longest range (end − start, in seconds) any
 * row has held: a search for ranges ending after X can then seek the start index from X minus that
 * span (see conditions.ts). A statement trigger on each table raises it from the rows a statement
 * wrote, so every write path feeds it, in the writing transaction. It only ever grows; it takes a
 * row lock only when it does, which after the first writes is rare.
 */
export function dateSpanDdl(): string[] {
  loadDefinitions();
  const ddl = ['CREATE TABLE IF NOT EXISTS date_span (resource_type text not null, param text not null, longest float8 not null, primary key (resource_type, param))'];
  for (const type of getResourceTypeList()) {
    const dates = [...getSearchParams(type).values()].filter((p) => p.type === 'date').map((p) => p.code);
    if (dates.length === 0) continue;
    const spans = (rows: string) =>
      `SELECT v.param, v.longest FROM (SELECT ${dates.map((d, i) => `max(${spanSql(d)}) AS s${i}`).join(', ')} FROM ${rows}) m, ` +
      `LATERAL (VALUES ${dates.map((d, i) => `(${literal(d)}, m.s${i})`).join(', ')}) v(param, longest)`;
    const raise =
      `INSERT INTO date_span (resource_type, param, longest) SELECT ${literal(type)}, n.param, n.longest FROM (${spans('new_rows')}) n ` +
      `WHERE n.longest > COALESCE((SELECT d.longest FROM date_span d WHERE d.resource_type = ${literal(type)} AND d.param = n.param), '-Infinity') ` +
      'ON CONFLICT (resource_type, param) DO UPDATE SET longest = greatest(date_span.longest, excluded.longest)';
    const fn = quote(`${type}_date_span`);
    ddl.push(`CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN ${raise}; RETURN NULL; END $fn$`);
    for (const event of ['INSERT', 'UPDATE']) {
      const trigger = quote(`${type}_date_span_${event.toLowerCase()}`);
      ddl.push(`DROP TRIGGER IF EXISTS ${trigger} ON ${quote(type)}`);
      ddl.push(`CREATE TRIGGER ${trigger} AFTER ${event} ON ${quote(type)} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`);
    }
    // what the table already holds (the trigger, created first, locks out writes until commit)
    ddl.push(`INSERT INTO date_span (resource_type, param, longest) SELECT ${literal(type)}, param, longest FROM (${spans(quote(type))}) n WHERE longest IS NOT NULL ` +
      'ON CONFLICT (resource_type, param) DO UPDATE SET longest = greatest(date_span.longest, excluded.longest)');
  }
  return ddl;
}

/** A row's span of a date parameter in seconds: infinite for an open-ended range. */
const spanSql = (code: string): string => `date_part('epoch', ${quote(`${code}_end`)}) - date_part('epoch', ${quote(`${code}_start`)})`;

const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`;

/** The `date_ranges` column, for databases made before it (`resourceTableDdl` creates it with the table). */
export function dateRangesDdl(): string[] {
  loadDefinitions();
  return getResourceTypeList().map((type) => `ALTER TABLE ${quote(type)} ADD COLUMN IF NOT EXISTS ${quote(DATE_RANGES)} jsonb`);
}

export function schemaDdl(): string[] {
  loadDefinitions(); // here, not up front: a tool opening a migrated database never needs them
  return getResourceTypeList().flatMap(resourceTableDdl);
}
