import type { Resource } from '@medplum/fhirtypes';
import { acknowledge, updateAcknowledging } from '../fhir/acknowledgement.ts';
import { badRequest, preconditionFailed } from '../fhir/outcome.ts';
import type { Sql } from './database.ts';
import type { StoredVersion, WriteResult, Writer } from './repository.ts';
import { executeSearch, type Restriction } from './search/execute.ts';
import { parseSearch } from './search/query.ts';

/**
 * Conditional interactions: the target is whatever a search query matches. Writes serialise on
 * the criteria with a transaction-scoped advisory lock, so two concurrent conditional creates with
 * the same criteria produce one resource.
 */

/** The ids matching `query` (a URL query string) for `type`, at most `limit`, among those `restrict` lets the caller see. */
export async function matchIds(sql: Sql, type: string, query: string, baseUrl: string, limit = 2, restrict?: Restriction): Promise<string[]> {
  const params = new URLSearchParams(query.startsWith('?') ? query.slice(1) : query);
  const search = parseSearch(type, params);
  if (search.filters.length === 0) throw badRequest(`Conditional criteria "${query}" have no search parameters`);
  search.count = limit;
  search.sort = [];
  search.include = [];
  search.revinclude = [];
  search.total = 'none';
  const result = await executeSearch(sql, search, baseUrl, restrict);
  return result.matches.map((m) => m.id);
}

/**
 * Criteria lock one of this many buckets, so a transaction holds at most this many advisory locks
 * however many conditional entries it has: PostgreSQL's lock table, shared by every database on the
 * server, has room for about 64 per connection, and a lock per criteria filled it at ~6,400.
 */
const CRITERIA_BUCKETS = 1024;
/** The advisory-lock key space of the criteria buckets (two-int keys never meet Vigil's other locks). */
const CRITERIA_LOCK_CLASS = 0x56_49_47_43;

export function lockCriteria(sql: Sql, type: string, query: string): Promise<void> {
  return lockAllCriteria(sql, [{ type, query }]);
}

/**
 * Locks the buckets of all the criteria in one statement, in bucket order: transactions that lock
 * their criteria up front this way cannot deadlock on each other, and a later lock of a held bucket
 * waits for nothing.
 */
export async function lockAllCriteria(sql: Sql, criteria: readonly { type: string; query: string }[]): Promise<void> {
  if (criteria.length === 0) return;
  const keys = criteria.map(({ type, query }) => {
    const params = [...new URLSearchParams(query.startsWith('?') ? query.slice(1) : query)].map(([k, v]) => `${k}=${v}`).sort().join('&');
    return `${type}?${params}`;
  });
  await sql.query(
    'SELECT pg_advisory_xact_lock($1::int, b) FROM (SELECT DISTINCT hashtext(k) & $2::int AS b FROM unnest($3::text[]) k ORDER BY b) s',
    [CRITERIA_LOCK_CLASS, CRITERIA_BUCKETS - 1, keys],
  );
}

/** If-None-Exist: create unless exactly one match exists (then return it); several matches are 412. */
export async function conditionalCreate(w: Writer, resource: Resource, criteria: string, id?: string): Promise<WriteResult> {
  await lockCriteria(w.sql, resource.resourceType, criteria);
  const ids = await matchIds(w.sql, resource.resourceType, criteria, w.baseUrl);
  if (ids.length > 1) throw preconditionFailed(`If-None-Exist "${criteria}" matches more than one ${resource.resourceType}`);
  if (ids.length === 1) {
    const existing = await w.read(resource.resourceType, ids[0]);
    return { resource: JSON.parse(existing.content as string) as Resource, content: existing.content as string, created: false };
  }
  return w.create(resource, id);
}

/** PUT [type]?criteria: update the one match, create when none, 412 when several; under the acknowledgement rule for `user`, as a PUT by id. */
export async function conditionalUpdate(w: Writer, resource: Resource, criteria: string, user: string | undefined, ifMatch?: string): Promise<WriteResult> {
  await lockCriteria(w.sql, resource.resourceType, criteria);
  const ids = await matchIds(w.sql, resource.resourceType, criteria, w.baseUrl);
  if (ids.length > 1) throw preconditionFailed(`Conditional update "${criteria}" matches more than one ${resource.resourceType}`);
  if (ids.length === 1) {
    if (resource.id && resource.id !== ids[0]) throw badRequest(`Resource id "${resource.id}" differs from the matching ${resource.resourceType}/${ids[0]}`, `${resource.resourceType}.id`);
    return updateAcknowledging(w, { ...resource, id: ids[0] }, user, { ifMatch });
  }
  return resource.id ? updateAcknowledging(w, resource, user, { ifMatch }) : w.create(acknowledge(undefined, resource, user));
}

const MAX_CONDITIONAL_DELETE = 1000;

/** DELETE [type]?criteria: deletes every match (up to a limit); `single` makes several matches a 412. */
export async function conditionalDelete(w: Writer, type: string, criteria: string, single: boolean): Promise<StoredVersion[]> {
  await lockCriteria(w.sql, type, criteria);
  const ids = await matchIds(w.sql, type, criteria, w.baseUrl, MAX_CONDITIONAL_DELETE + 1);
  if (ids.length > MAX_CONDITIONAL_DELETE || (single && ids.length > 1)) {
    throw preconditionFailed(`Conditional delete "${criteria}" matches too many ${type} resources (${single ? 'at most 1' : `at most ${MAX_CONDITIONAL_DELETE}`})`);
  }
  const deleted: StoredVersion[] = [];
  for (const id of ids) {
    const d = await w.delete(type, id);
    if (d) deleted.push(d);
  }
  return deleted;
}
