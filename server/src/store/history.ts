import { getResourceTypeList } from '../definitions.ts';
import { badRequest } from '../fhir/outcome.ts';
import { quote } from './columns.ts';
import type { Sql } from './database.ts';
import { historyTable } from './schema.ts';
import { parseDate } from './search/values.ts';

export interface HistoryQuery {
  resourceType?: string;
  id?: string;
  since?: string;
  at?: string;
  count: number;
  cursor?: string;
}

export interface HistoryEntry {
  resourceType: string;
  id: string;
  versionId: string;
  lastUpdated: string;
  deleted: boolean;
  content: string | null;
}

export interface HistoryPage {
  entries: HistoryEntry[];
  next?: string;
}

/**
 * Instance, type and system history, newest first, paged by a keyset cursor on
 * (last_updated, type, id, version) so that new versions never shift later pages.
 */
export async function readHistory(sql: Sql, q: HistoryQuery): Promise<HistoryPage> {
  const params: unknown[] = [];
  const bind = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const idCondition = q.id ? [`h.id = ${bind(q.id)}`] : [];
  const conditions = [...idCondition];
  if (q.since) conditions.push(`h.last_updated >= ${bind(parseDate(q.since, '_since').s)}::timestamptz`);
  if (q.cursor) {
    const c = decode(q.cursor);
    conditions.push(
      `(h.last_updated, '${'__TYPE__'}', h.id, h.version_id) < (${bind(c[0])}::timestamptz, ${bind(c[1])}::text, ${bind(c[2])}::text, ${bind(c[3])}::int)`,
    );
  }
  const period = q.at ? parseDate(q.at, '_at') : undefined;
  const at = period && { start: bind(period.s), end: bind(period.e) };
  const types = q.resourceType ? [q.resourceType] : getResourceTypeList();
  const limit = q.count + 1;
  const selects = types.map((type) => {
    const where = (list: string[]) => (list.length ? `WHERE ${list.join(' AND ')}` : '').replaceAll("'__TYPE__'", `'${type}'::text`);
    const table = `${quote(historyTable(type))} h`;
    const columns = `'${type}'::text AS "resourceType", h.id, h.version_id, h.last_updated, h.deleted, h.content`;
    const order = 'ORDER BY h.last_updated DESC, h.id DESC, h.version_id DESC';
    if (!at) return `(SELECT ${columns} FROM ${table} ${where(conditions)} ${order} LIMIT ${limit})`;
    // _at: the versions current at some time during its period (R4: may be more than one), i.e.
    // made before its end and not replaced by their successor before its start. The other
    // conditions, the cursor above all, apply to those versions, once each is paired with its successor.
    const versions = `SELECT ${columns}, lead(h.last_updated) OVER (PARTITION BY h.id ORDER BY h.version_id) AS replaced ` +
      `FROM ${table} ${where([...idCondition, `h.last_updated < ${at.end}::timestamptz`])}`;
    return `(SELECT "resourceType", id, version_id, last_updated, deleted, content FROM (${versions}) h ` +
      `${where([`(h.replaced IS NULL OR h.replaced > ${at.start}::timestamptz)`, ...conditions])} ${order} LIMIT ${limit})`;
  });
  const rows = await sql.query<{ resourceType: string; id: string; version_id: number; last_updated: string; deleted: boolean; content: string | null }>(
    `SELECT * FROM (${selects.join(' UNION ALL ')}) u ORDER BY last_updated DESC, "resourceType" DESC, id DESC, version_id DESC LIMIT ${limit}`,
    params,
  );
  const page = rows.slice(0, q.count);
  const last = page[page.length - 1];
  return {
    entries: page.map((r) => ({ resourceType: r.resourceType, id: r.id, versionId: String(r.version_id), lastUpdated: r.last_updated, deleted: r.deleted, content: r.content })),
    next: rows.length > q.count && last ? encode([last.last_updated, last.resourceType, last.id, last.version_id]) : undefined,
  };
}

const encode = (v: unknown[]): string => Buffer.from(JSON.stringify(v)).toString('base64url');

function decode(text: string): unknown[] {
  try {
    const v = JSON.parse(Buffer.from(text, 'base64url').toString());
    if (Array.isArray(v) && v.length === 4) return v;
  } catch {
    // fall through
  }
  throw badRequest('Invalid _cursor', '_cursor');
}
