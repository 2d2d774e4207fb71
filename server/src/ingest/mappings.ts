import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database } from '../store/database.ts';
import { compileMapping, MappingError, type CompiledMapping } from './template/index.ts';

/**
 * Named mappings, stored in the database so that every replica shares them. Compiled mappings are
 * cached briefly: a change made through another replica is seen within CACHE_MS.
 */
const CACHE_MS = 2000;
const BUILTIN_DIR = fileURLToPath(new URL('../../../fhir-profiles/ingest/', import.meta.url));
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface StoredMapping {
  name: string;
  definition: Record<string, unknown>;
  updatedAt: string;
}

export class MappingStore {
  readonly #db: Database;
  readonly #cache = new Map<string, { mapping: CompiledMapping | undefined; at: number }>();

  constructor(db: Database) {
    this.#db = db;
  }

  /** Installs the built-in mappings that are not there yet (an operator's edits are kept). */
  async installBuiltins(): Promise<void> {
    for (const file of readdirSync(BUILTIN_DIR).filter((f) => f.endsWith('.json'))) {
      const definition = JSON.parse(readFileSync(`${BUILTIN_DIR}/${file}`, 'utf8')) as Record<string, unknown>;
      const name = file.replace(/\.json$/, '');
      compileMapping(definition, { name });
      await this.#db.query('INSERT INTO ingest_mapping (name, definition) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, JSON.stringify(definition)]);
    }
  }

  /** Validates (throwing MappingError) and stores; true when it was new. */
  async put(name: string, definition: unknown): Promise<boolean> {
    if (!NAME.test(name)) throw new MappingError('name', 'name', 'Mapping names are 1-64 characters of a-z, 0-9, ".", "_" and "-"');
    compileMapping(definition, { name });
    const rows = await this.#db.query<{ created: boolean }>(
      `INSERT INTO ingest_mapping (name, definition) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, updated_at = now()
       RETURNING (xmax = 0) AS created`,
      [name, JSON.stringify(definition)],
    );
    this.#cache.delete(name);
    return rows[0].created;
  }

  async delete(name: string): Promise<boolean> {
    if (!NAME.test(name)) return false;
    const rows = await this.#db.query('DELETE FROM ingest_mapping WHERE name = $1 RETURNING name', [name]);
    this.#cache.delete(name);
    return rows.length > 0;
  }

  /** Names no mapping can have (from URLs and MQTT topics, NUL among them, which PostgreSQL text refuses) are not looked up. */
  async get(name: string): Promise<StoredMapping | undefined> {
    if (!NAME.test(name)) return undefined;
    const rows = await this.#db.query<{ name: string; definition: unknown; updated_at: string }>(
      'SELECT name, definition, updated_at FROM ingest_mapping WHERE name = $1',
      [name],
    );
    return rows[0] ? toStored(rows[0]) : undefined;
  }

  async list(): Promise<StoredMapping[]> {
    const rows = await this.#db.query<{ name: string; definition: unknown; updated_at: string }>('SELECT name, definition, updated_at FROM ingest_mapping ORDER BY name');
    return rows.map(toStored);
  }

  async compiled(name: string): Promise<CompiledMapping | undefined> {
    if (!NAME.test(name)) return undefined;
    const hit = this.#cache.get(name);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.mapping;
    const stored = await this.get(name);
    const mapping = stored ? compileMapping(stored.definition, { name }) : undefined;
    this.#cache.set(name, { mapping, at: Date.now() });
    return mapping;
  }
}

function toStored(row: { name: string; definition: unknown; updated_at: string }): StoredMapping {
  const definition = typeof row.definition === 'string' ? JSON.parse(row.definition) : row.definition;
  return { name: row.name, definition: definition as Record<string, unknown>, updatedAt: row.updated_at };
}
