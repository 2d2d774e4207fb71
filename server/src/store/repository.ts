import type { Resource } from '@medplum/fhirtypes';
import { isKnownResourceType } from '../definitions.ts';
import { FhirError, badRequest, gone, notFound, preconditionFailed } from '../fhir/outcome.ts';
import { quote } from './columns.ts';
import type { Database, Sql } from './database.ts';
import type { ChangeEvent, ChangeFeed } from './events.ts';
import { extractIndex, type IndexRow } from './extract.ts';
import { newResourceId } from './ids.ts';
import { insertBatcher, insertRows, rowJson } from './insert-batcher.ts';
import { historyTable, tableColumns } from './schema.ts';
import { TickBatcher } from './tick-batcher.ts';
import { validate } from './validation.ts';

/** A stored version as the database holds it: the JSON text is served as is, never re-serialised. */
export interface StoredVersion {
  resourceType: string;
  id: string;
  versionId: string;
  lastUpdated: string;
  deleted: boolean;
  content: string | null;
}

export interface WriteResult {
  resource: Resource;
  content: string;
  created: boolean;
}

export interface UpdateOptions {
  /** If-Match: the version the client expects to replace. */
  ifMatch?: string;
  /** Creating with a client-chosen id (PUT to a new id) is allowed. */
  allowCreate?: boolean;
}

const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;
/** Rows per INSERT of `createMany`: one JSON parameter of a few MB at most. */
const MAX_ROWS_PER_STATEMENT = 1000;

/**
 * The write path and reads by id. Every write is one database transaction and publishes its change
 * events only after commit; several writes can share one transaction through `transaction()`.
 */
export class Repository {
  readonly db: Database;
  readonly baseUrl: string;
  readonly #feed: ChangeFeed;
  readonly #inserts: TickBatcher<string, undefined>;
  readonly #reads: TickBatcher<string, StoredVersion | undefined>;

  constructor(db: Database, baseUrl: string, feed: ChangeFeed) {
    this.db = db;
    this.baseUrl = baseUrl;
    this.#feed = feed;
    this.#inserts = insertBatcher(db);
    // concurrent reads by id of one type share a round trip, as concurrent creates do
    this.#reads = new TickBatcher((type, ids) => readMany(db, type, ids), 500);
  }

  async transaction<T>(fn: (writer: Writer) => Promise<T>): Promise<T> {
    const events: ChangeEvent[] = [];
    const result = await this.db.transaction((tx) => fn(new Writer(tx, this.baseUrl, events)));
    this.#feed.publish(events);
    return result;
  }

  /**
   * A create is one row written by one statement, batched with concurrent creates into one
   * commit: the fast path for device readings.
   */
  async create(resource: Resource): Promise<WriteResult> {
    const stored = prepare(resource, newResourceId(), 1);
    const content = JSON.stringify(stored);
    await this.#inserts.add(stored.resourceType, rowJson(stored, content, this.baseUrl));
    this.#feed.publish([changeEvent('create', stored)]);
    return { resource: stored, content, created: true };
  }

  update(resource: Resource, options: UpdateOptions = {}): Promise<WriteResult> {
    if (options.ifMatch !== undefined) return this.#updateIfMatch(resource, options.ifMatch);
    return this.transaction((w) => w.update(resource, options));
  }

  /**
   * An update that names the version it replaces is one statement, not a transaction of four: the
   * row changes only while it is still that version (a concurrent update makes PostgreSQL check the
   * condition again on the newer row), so there is nothing to lock first.
   */
  async #updateIfMatch(resource: Resource, ifMatch: string): Promise<WriteResult> {
    checkType(resource.resourceType);
    const id = resource.id;
    if (!id || !ID_PATTERN.test(id)) throw badRequest('Resource id is missing or not a valid FHIR id', `${resource.resourceType}.id`);
    const mismatch = () => preconditionFailed(`If-Match ${ifMatch} does not match the current version of ${resource.resourceType}/${id}`);
    if (!/^[1-9][0-9]{0,8}$/.test(ifMatch)) throw mismatch();
    const stored = prepare(resource, id, Number(ifMatch) + 1);
    const content = JSON.stringify(stored);
    const rows = await this.db.query(updateSql(stored.resourceType, true), rowParams(stored, content, this.baseUrl));
    if (rows.length === 0) throw mismatch();
    this.#feed.publish([changeEvent('update', stored)]);
    return { resource: stored, content, created: false };
  }

  delete(resourceType: string, id: string): Promise<StoredVersion | undefined> {
    return this.transaction((w) => w.delete(resourceType, id));
  }

  async readVersion(resourceType: string, id: string): Promise<StoredVersion> {
    checkType(resourceType);
    const found = ID_PATTERN.test(id) ? await this.#reads.add(resourceType, id) : undefined;
    return checkFound(found, resourceType, id);
  }

  async read<T extends Resource = Resource>(resourceType: string, id: string): Promise<T> {
    const v = await this.readVersion(resourceType, id);
    return JSON.parse(v.content as string) as T;
  }

  async vread(resourceType: string, id: string, versionId: string): Promise<StoredVersion> {
    checkType(resourceType);
    if (!/^\d{1,9}$/.test(versionId) || !ID_PATTERN.test(id)) throw notFound(`${resourceType}/${id}/_history/${versionId} not found`);
    const rows = await this.db.query<StoredVersion>(
      `SELECT id, version_id::text AS "versionId", last_updated AS "lastUpdated", deleted, content FROM ${quote(historyTable(resourceType))} WHERE id = $1 AND version_id = $2`,
      [id, Number(versionId)],
    );
    if (!rows[0]) throw notFound(`${resourceType}/${id}/_history/${versionId} not found`);
    if (rows[0].deleted) throw gone(`${resourceType}/${id}/_history/${versionId} is a deletion`);
    return { ...rows[0], resourceType };
  }
}

const CURRENT = `SELECT id, version_id::text AS "versionId", last_updated AS "lastUpdated", deleted, content`;

async function readCurrent(sql: Sql, resourceType: string, id: string, lock = false): Promise<StoredVersion> {
  checkType(resourceType);
  if (!ID_PATTERN.test(id)) throw notFound(`${resourceType}/${id} not found`);
  const rows = await sql.query<StoredVersion>(`${CURRENT} FROM ${quote(resourceType)} WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  return checkFound(rows[0] && { ...rows[0], resourceType }, resourceType, id);
}

/** The current versions of several resources of one type, in the order of `ids`. */
async function readMany(sql: Sql, resourceType: string, ids: string[]): Promise<(StoredVersion | undefined)[]> {
  const rows = await sql.query<StoredVersion>(`${CURRENT} FROM ${quote(resourceType)} WHERE id = ANY($1)`, [ids]);
  const byId = new Map(rows.map((r) => [r.id, { ...r, resourceType }]));
  return ids.map((id) => byId.get(id));
}

function checkFound(found: StoredVersion | undefined, resourceType: string, id: string): StoredVersion {
  if (!found) throw notFound(`${resourceType}/${id} not found`);
  if (found.deleted) throw gone(`${resourceType}/${id} was deleted`);
  return found;
}

function checkType(resourceType: string): void {
  if (!isKnownResourceType(resourceType)) throw notFound(`Unknown resource type ${resourceType}`);
}

/** Writes within one transaction (or one auto-committed statement), collecting their change events. */
export class Writer {
  readonly sql: Sql;
  readonly baseUrl: string;
  readonly #events: ChangeEvent[];

  constructor(sql: Sql, baseUrl: string, events: ChangeEvent[]) {
    this.sql = sql;
    this.baseUrl = baseUrl;
    this.#events = events;
  }

  /** Creates several resources with one multi-row statement per type and chunk. */
  /** `validated`: the caller has just run `validate` on exactly this resource (device ingest does, to reject per message). */
  async createMany(items: { resource: Resource; id: string; validated?: boolean }[]): Promise<WriteResult[]> {
    const results = items.map(({ resource, id, validated }, item) => {
      try {
        const stored = prepare(resource, id, 1, !validated);
        return { resource: stored, content: JSON.stringify(stored), created: true };
      } catch (err) {
        // tells the caller which of the items failed
        if (err instanceof FhirError) err.item = item;
        throw err;
      }
    });
    const byType = new Map<string, WriteResult[]>();
    for (const r of results) {
      const list = byType.get(r.resource.resourceType);
      if (list) list.push(r);
      else byType.set(r.resource.resourceType, [r]);
    }
    for (const [type, list] of byType) {
      for (let i = 0; i < list.length; i += MAX_ROWS_PER_STATEMENT) {
        await insertRows(this.sql, type, list.slice(i, i + MAX_ROWS_PER_STATEMENT).map((r) => rowJson(r.resource, r.content, this.baseUrl)));
      }
    }
    for (const r of results) this.#emit('create', r.resource);
    return results;
  }

  async create(resource: Resource, id: string = newResourceId()): Promise<WriteResult> {
    const stored = prepare(resource, id, 1);
    const content = JSON.stringify(stored);
    await insertRows(this.sql, stored.resourceType, [rowJson(stored, content, this.baseUrl)]);
    this.#emit('create', stored);
    return { resource: stored, content, created: true };
  }

  async update(resource: Resource, options: UpdateOptions = {}): Promise<WriteResult> {
    checkType(resource.resourceType);
    const id = resource.id;
    if (!id || !ID_PATTERN.test(id)) throw badRequest('Resource id is missing or not a valid FHIR id', `${resource.resourceType}.id`);
    const rows = await this.sql.query<{ version_id: number; deleted: boolean; content: string }>(
      `SELECT version_id, deleted, content FROM ${quote(resource.resourceType)} WHERE id = $1 FOR UPDATE`,
      [id],
    );
    const current = rows[0];
    if (options.ifMatch !== undefined && (!current || current.deleted || String(current.version_id) !== options.ifMatch)) {
      throw preconditionFailed(`If-Match ${options.ifMatch} does not match the current version of ${resource.resourceType}/${id}`);
    }
    if (!current) {
      if (options.allowCreate === false) throw notFound(`${resource.resourceType}/${id} not found`);
      return this.create(resource, id);
    }
    const stored = prepare(resource, id, current.version_id + 1);
    const content = JSON.stringify(stored);
    await this.sql.query(updateSql(stored.resourceType), rowParams(stored, content, this.baseUrl));
    this.#emit(current.deleted ? 'create' : 'update', stored);
    return { resource: stored, content, created: current.deleted };
  }

  /** Soft delete: a new version marked deleted. Deleting what is absent or already deleted is a no-op. */
  async delete(resourceType: string, id: string): Promise<StoredVersion | undefined> {
    checkType(resourceType);
    if (!ID_PATTERN.test(id)) return undefined;
    const rows = await this.sql.query<{ version_id: number; deleted: boolean }>(
      `SELECT version_id, deleted FROM ${quote(resourceType)} WHERE id = $1 FOR UPDATE`,
      [id],
    );
    if (!rows[0] || rows[0].deleted) return undefined;
    const versionId = rows[0].version_id + 1;
    const lastUpdated = new Date().toISOString();
    await this.sql.query(
      `WITH h AS (INSERT INTO ${quote(historyTable(resourceType))} (id, version_id, last_updated, deleted, content) VALUES ($1, $2, $3, true, NULL)),
       o AS (INSERT INTO change_outbox (resource_type, id, version_id, interaction) VALUES ('${resourceType}', $1, $2, 'delete'))
       UPDATE ${quote(resourceType)} SET version_id = $2, last_updated = $3, deleted = true WHERE id = $1`,
      [id, versionId, lastUpdated],
    );
    this.#events.push({ interaction: 'delete', resourceType, id, versionId: String(versionId), lastUpdated });
    return { resourceType, id, versionId: String(versionId), lastUpdated, deleted: true, content: null };
  }

  read(resourceType: string, id: string, lock = false): Promise<StoredVersion> {
    return readCurrent(this.sql, resourceType, id, lock);
  }

  #emit(interaction: ChangeEvent['interaction'], resource: Resource): void {
    this.#events.push(changeEvent(interaction, resource));
  }
}

function changeEvent(interaction: ChangeEvent['interaction'], resource: Resource): ChangeEvent {
  const meta = resource.meta as { versionId: string; lastUpdated: string };
  return { interaction, resourceType: resource.resourceType, id: resource.id as string, versionId: meta.versionId, lastUpdated: meta.lastUpdated, resource };
}

/** Validates against the R4 base definitions and stamps id and meta. */
function prepare(resource: Resource, id: string, version: number, check = true): Resource {
  checkType(resource.resourceType);
  const stored = { ...resource, id, meta: { ...resource.meta, versionId: String(version), lastUpdated: new Date().toISOString() } } as Resource;
  if (check) validate(stored);
  return stored;
}

const updateCache = new Map<string, string>();

/**
 * One statement writes the new history row, replaces the current row and records the change in the
 * outbox. `guarded`: only while the row is the version before `$2` and not deleted, returning a row
 * when it was written.
 */
function updateSql(type: string, guarded = false): string {
  const key = `${type}|${guarded}`;
  let sql = updateCache.get(key);
  if (!sql) {
    const columns = tableColumns(type).map((c) => quote(c.name));
    const update = `UPDATE ${quote(type)} SET ${columns.slice(1).map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1`;
    const row = guarded ? 'FROM u' : '';
    const history = `INSERT INTO ${quote(historyTable(type))} (id, version_id, last_updated, deleted, content) SELECT $1, $2, $3, false, $5 ${row}`;
    const outbox = `INSERT INTO change_outbox (resource_type, id, version_id, interaction) SELECT '${type}', $1, $2, 'update' ${row}`;
    sql = guarded
      ? `WITH u AS (${update} AND version_id = $2::int - 1 AND NOT deleted RETURNING id), h AS (${history}), o AS (${outbox}) SELECT id FROM u`
      : `WITH h AS (${history}), o AS (${outbox}) ${update}`;
    updateCache.set(key, sql);
  }
  return sql;
}

/**
 * The values of a resource table row, in `tableColumns` order, for an update (and bulk loaders).
 * `content` is `JSON.stringify(resource)`.
 */
export function rowParams(resource: Resource, content: string, baseUrl: string, index: IndexRow = extractIndex(resource, baseUrl, content)): unknown[] {
  const meta = resource.meta as { versionId: string; lastUpdated: string };
  return tableColumns(resource.resourceType).map((c) => {
    switch (c.name) {
      case 'id': return resource.id;
      case 'version_id': return Number(meta.versionId);
      case 'last_updated': return meta.lastUpdated;
      case 'deleted': return false;
      case 'content': return content;
      default: return index[c.name] ?? null;
    }
  });
}
