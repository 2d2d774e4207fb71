import type { SearchParam } from '../../definitions.ts';
import { badRequest } from '../../fhir/outcome.ts';
import { quote } from '../columns.ts';
import type { Sql } from '../database.ts';
import { Params, col, filterSql, type SearchContext } from './conditions.ts';
import type { IncludeSpec, SearchQuery, SortKey } from './query.ts';

export interface FoundResource {
  resourceType: string;
  id: string;
  content: string;
}

export interface SearchResult {
  matches: FoundResource[];
  included: FoundResource[];
  total?: number;
  /** Opaque cursors for the next and previous pages. */
  next?: string;
  previous?: string;
}

/** Extra SQL restriction on a table (access control plugs in here). */
export type Restriction = (t: string, type: string, params: Params) => string | undefined;

const MAX_INCLUDES = 1000;

interface OrderKey { expr: string; cast: string; descending: boolean }
interface Cursor { k: unknown[]; d: 'n' | 'p' }

export function executeSearch(sql: Sql, query: SearchQuery, baseUrl: string, restrict?: Restriction): Promise<SearchResult> {
  return search(sql, [query], false, baseUrl, restrict);
}

/**
 * A search across types (system level): one query per type, all with the same result parameters,
 * run as one UNION ALL whose branches are each ordered and limited (from their own indexes), then
 * merged in (sort keys, type, id) order, which the keyset cursor follows across types.
 */
export function executeSystemSearch(sql: Sql, queries: SearchQuery[], baseUrl: string, restrict?: Restriction): Promise<SearchResult> {
  // types the token may not read at all are left out rather than queried for nothing
  const readable = queries.filter((q) => restrict?.('t', q.resourceType, new Params()) !== 'false');
  if (readable.length === 0) return Promise.resolve({ matches: [], included: [], total: queries[0]?.total === 'none' ? undefined : 0 });
  return search(sql, readable, true, baseUrl, restrict);
}

/** `typed`: several types, so rows carry their type and order by it before the id. */
async function search(sql: Sql, queries: SearchQuery[], typed: boolean, baseUrl: string, restrict?: Restriction): Promise<SearchResult> {
  const where = (query: SearchQuery, params: Params): string => {
    const type = query.resourceType;
    const ctx: SearchContext = { params, baseUrl };
    const parts = ['NOT t.deleted', ...query.filters.map((f) => filterSql(f, 't', type, ctx))];
    const extra = restrict?.('t', type, params);
    if (extra) parts.push(extra);
    return parts.join(' AND ');
  };
  // the result parameters are the same in every query
  const { count, total, summary } = queries[0];

  const result: SearchResult = { matches: [], included: [] };
  // _summary=count and _count=0 ask for the total alone
  const countOnly = summary === 'count' || count === 0;
  if (total === 'estimate') {
    result.total = await estimate(sql, queries, where);
  } else if (total === 'accurate' || (countOnly && total !== 'none')) {
    const params = new Params();
    const counts = queries.map((q) => `(SELECT count(*) FROM ${quote(q.resourceType)} t WHERE ${where(q, params)})`);
    const rows = await sql.query<{ n: number }>(`SELECT (${counts.join(' + ')})::int AS n`, params.values, { customPlan: params.customPlan });
    result.total = rows[0].n;
  }
  if (countOnly) return result;

  const keyLists = queries.map((q) => orderKeys(q.sort, typed ? q.resourceType : undefined));
  const cursor = queries[0].cursor ? decodeCursor(queries[0].cursor, keyLists[0].length) : undefined;
  const backwards = cursor?.d === 'p';
  const direction = (k: OrderKey): string => (k.descending !== backwards ? 'DESC' : 'ASC');
  const params = new Params();
  const branches = queries.map((q, b) => {
    const keys = keyLists[b];
    const conditions = [where(q, params)];
    if (cursor) conditions.push(afterSql(keys, cursor.k, backwards, params));
    const select = `SELECT ${typed ? `'${q.resourceType}' AS "resourceType", ` : ''}t.id, t.content, ${keys.map((k, i) => `${k.expr} AS k${i}`).join(', ')} FROM ${quote(q.resourceType)} t ` +
      `WHERE ${conditions.join(' AND ')}`;
    const limit = `LIMIT ${count + 1}`;
    // the few matches of an identifier are found first and then sorted: left to choose, a planner
    // without statistics walks the sort key's index through the whole table looking for them
    if (byIdentifier(q)) return `SELECT * FROM (${select} OFFSET 0) f ORDER BY ${keys.map((k, i) => `k${i} ${direction(k)}`).join(', ')} ${limit}`;
    return `${select} ORDER BY ${keys.map((k) => `${k.expr} ${direction(k)}`).join(', ')} ${limit}`;
  });
  const text = typed
    ? `SELECT * FROM (${branches.map((b) => `(${b})`).join(' UNION ALL ')}) u ORDER BY ${keyLists[0].map((k, i) => `k${i} ${direction(k)}`).join(', ')} LIMIT ${count + 1}`
    : branches[0];
  const rows = await sql.query<{ resourceType?: string; id: string; content: string } & Record<string, unknown>>(text, params.values, { customPlan: params.customPlan });
  const more = rows.length > count;
  const page = rows.slice(0, count);
  if (backwards) page.reverse();
  const keyOf = (row: Record<string, unknown>): unknown[] => keyLists[0].map((_, i) => row[`k${i}`]);
  if (page.length > 0) {
    if (backwards ? true : more) result.next = encodeCursor({ k: keyOf(page[page.length - 1]), d: 'n' });
    if (cursor && (backwards ? more : true)) result.previous = encodeCursor({ k: keyOf(page[0]), d: 'p' });
  }
  if (result.total === undefined && total !== 'none' && !cursor && !more) result.total = page.length;
  result.matches = page.map((r) => ({ resourceType: r.resourceType ?? queries[0].resourceType, id: r.id, content: r.content }));
  result.included = await includes(sql, includeSpecs(queries), result.matches, restrict);
  return result;
}

/** Whether the search asks for resources by identifier value (`system|value` or `value`): a handful of rows at most. */
function byIdentifier(query: SearchQuery): boolean {
  return query.filters.some((f) => f.kind === 'param' && f.param.code === 'identifier' && f.param.type === 'token' && !f.modifier && f.values.every((v) => !v.endsWith('|')));
}

/** The sort keys, then the type (when several types are searched; a known type name, safe as a literal) and the id as tie-breakers. */
function orderKeys(sort: SortKey[], type?: string): OrderKey[] {
  const keys: OrderKey[] = sort.map((s) => ({ ...sortExpr(s), descending: s.descending }));
  if (sort.length === 0) keys.push({ expr: 't.last_updated', cast: 'timestamptz', descending: false });
  if (type) keys.push({ expr: `'${type}'::text`, cast: 'text', descending: false });
  keys.push({ expr: 't.id', cast: 'text', descending: false });
  return keys;
}

function sortExpr(s: SortKey): { expr: string; cast: string } {
  if (s.code === '_id') return { expr: 't.id', cast: 'text' };
  if (s.code === '_lastUpdated') return { expr: 't.last_updated', cast: 'timestamptz' };
  const p = s.param as SearchParam;
  // R4: a parameter with several values sorts by the one that comes first in the order asked for
  const first = `(SELECT ${s.descending ? 'max' : 'min'}(v) FROM unnest(${col('t', p.code)}) v)`;
  switch (p.type) {
    case 'date': return { expr: col('t', `${p.code}_start`), cast: 'timestamptz' };
    case 'number':
    case 'quantity': return { expr: first, cast: 'numeric' };
    case 'reference': return { expr: p.array ? first : col('t', p.code), cast: 'text' };
    default: return { expr: first, cast: 'text' };
  }
}

/**
 * Keyset condition: rows strictly after the cursor in the (possibly reversed) order. NULLs sort as
 * the largest value in both directions, as PostgreSQL's defaults do.
 */
function afterSql(keys: OrderKey[], values: unknown[], backwards: boolean, params: Params): string {
  const ors: string[] = [];
  const equal: string[] = [];
  keys.forEach((k, i) => {
    const v = values[i];
    const desc = k.descending !== backwards;
    const bound = v === null ? undefined : `${params.add(v)}::${k.cast}`;
    let after: string | undefined;
    if (bound === undefined) after = desc ? `${k.expr} IS NOT NULL` : undefined;
    else after = desc ? `${k.expr} < ${bound}` : `(${k.expr} > ${bound} OR ${k.expr} IS NULL)`;
    if (after) ors.push([...equal, after].join(' AND '));
    equal.push(bound === undefined ? `${k.expr} IS NULL` : `${k.expr} = ${bound}`);
  });
  return ors.length ? `(${ors.map((o) => `(${o})`).join(' OR ')})` : 'false';
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(text: string, length: number): Cursor {
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString()) as Cursor;
    if (Array.isArray(c.k) && c.k.length === length && (c.d === 'n' || c.d === 'p')) return c;
  } catch {
    // fall through
  }
  throw badRequest('Invalid or expired _cursor', '_cursor');
}

async function estimate(sql: Sql, queries: SearchQuery[], where: (q: SearchQuery, p: Params) => string): Promise<number> {
  const params = new Params();
  const selects = queries.map((q) => `SELECT 1 FROM ${quote(q.resourceType)} t WHERE ${where(q, params)}`);
  const rows = await sql.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${selects.join(' UNION ALL ')}`, params.values);
  const plan = rows[0]['QUERY PLAN'];
  const parsed = (typeof plan === 'string' ? JSON.parse(plan) : plan) as { Plan: { 'Plan Rows': number } }[];
  return parsed[0].Plan['Plan Rows'];
}

/** The _include and _revinclude specs of the queries, each once (the types of a system search share most). */
function includeSpecs(queries: SearchQuery[]): { include: IncludeSpec[]; revinclude: IncludeSpec[] } {
  const unique = (specs: IncludeSpec[]): IncludeSpec[] => [
    ...new Map(specs.map((s) => [`${s.sourceType}:${s.params.map((p) => p.code).join(',')}:${s.targetType ?? ''}:${s.iterate}`, s])).values(),
  ];
  return { include: unique(queries.flatMap((q) => q.include)), revinclude: unique(queries.flatMap((q) => q.revinclude)) };
}

/** _include and _revinclude, following :iterate specs until nothing new is found. */
async function includes(sql: Sql, specs: { include: IncludeSpec[]; revinclude: IncludeSpec[] }, matches: FoundResource[], restrict?: Restriction): Promise<FoundResource[]> {
  if (matches.length === 0 || (specs.include.length === 0 && specs.revinclude.length === 0)) return [];
  const seen = new Set(matches.map((m) => `${m.resourceType}/${m.id}`));
  const found: FoundResource[] = [];
  let frontier = matches;
  let include = specs.include;
  let revinclude = specs.revinclude;
  while (frontier.length > 0 && found.length < MAX_INCLUDES && (include.length || revinclude.length)) {
    const next: FoundResource[] = [];
    const add = (rows: FoundResource[]): void => {
      for (const r of rows) {
        const key = `${r.resourceType}/${r.id}`;
        if (!seen.has(key) && found.length + next.length < MAX_INCLUDES) {
          seen.add(key);
          next.push(r);
        }
      }
    };
    for (const spec of include) add(await forwardIncludes(sql, spec, frontier, restrict));
    for (const spec of revinclude) add(await reverseIncludes(sql, spec, frontier, restrict));
    found.push(...next);
    frontier = next;
    include = include.filter((s) => s.iterate);
    revinclude = revinclude.filter((s) => s.iterate);
  }
  return found;
}

async function forwardIncludes(sql: Sql, spec: IncludeSpec, from: FoundResource[], restrict?: Restriction): Promise<FoundResource[]> {
  const ids = from.filter((r) => r.resourceType === spec.sourceType).map((r) => r.id);
  if (ids.length === 0) return [];
  const refs = new Set<string>();
  const rows = await sql.query<Record<string, unknown>>(
    `SELECT ${spec.params.map((p) => col('t', p.code)).join(', ')} FROM ${quote(spec.sourceType)} t WHERE t.id = ANY($1)`,
    [ids],
  );
  for (const row of rows) {
    for (const value of Object.values(row)) {
      for (const ref of Array.isArray(value) ? value : value ? [value] : []) refs.add(ref as string);
    }
  }
  const byType = new Map<string, string[]>();
  for (const ref of refs) {
    const [type, id, extra] = ref.split('/');
    if (!id || extra !== undefined || ref.includes('://') || (spec.targetType && type !== spec.targetType)) continue;
    byType.set(type, [...(byType.get(type) ?? []), id]);
  }
  const out: FoundResource[] = [];
  for (const [type, typeIds] of byType) {
    if (!spec.params.some((p) => p.targets.length === 0 || p.targets.includes(type))) continue;
    out.push(...(await fetchWhere(sql, type, (t, p) => `${t}.id = ANY(${p.add(typeIds)})`, restrict)));
  }
  return out;
}

async function reverseIncludes(sql: Sql, spec: IncludeSpec, targets: FoundResource[], restrict?: Restriction): Promise<FoundResource[]> {
  const refs = targets.filter((r) => !spec.targetType || r.resourceType === spec.targetType).map((r) => `${r.resourceType}/${r.id}`);
  if (refs.length === 0) return [];
  return fetchWhere(sql, spec.sourceType, (t, p) => {
    const list = p.add(refs);
    return `(${spec.params.map((param) => (param.array ? `${col(t, param.code)} && ${list}` : `${col(t, param.code)} = ANY(${list})`)).join(' OR ')})`;
  }, restrict);
}

async function fetchWhere(sql: Sql, type: string, condition: (t: string, p: Params) => string, restrict?: Restriction): Promise<FoundResource[]> {
  const params = new Params();
  const parts = ['NOT t.deleted', condition('t', params)];
  const extra = restrict?.('t', type, params);
  if (extra) parts.push(extra);
  const rows = await sql.query<{ id: string; content: string }>(
    `SELECT t.id, t.content FROM ${quote(type)} t WHERE ${parts.join(' AND ')} LIMIT ${MAX_INCLUDES}`,
    params.values,
  );
  return rows.map((r) => ({ resourceType: type, id: r.id, content: r.content }));
}
