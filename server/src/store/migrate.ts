import type { Database, Sql } from './database.ts';
import { schemaDdl } from './schema.ts';

/**
 * Versioned, idempotent migrations. Concurrent starts of several replicas serialise on an advisory
 * lock held for the migration transaction, so each version is applied exactly once.
 */
interface Migration {
  version: number;
  name: string;
  up(tx: Sql): Promise<void>;
}

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'R4 resource and history tables',
    async up(tx) {
      for (const statement of schemaDdl()) await tx.query(statement);
    },
  },
  {
    version: 2,
    name: 'ingest mappings and dead letters',
    async up(tx) {
      await tx.query(
        'CREATE TABLE ingest_mapping (name text primary key, definition jsonb not null, updated_at timestamptz not null default now())',
      );
      await tx.query(
        `CREATE TABLE ingest_dead_letter (id uuid primary key, mapping text not null, received_at timestamptz not null default now(),
         reason text not null, message text not null, replayed_at timestamptz)`,
      );
      await tx.query('CREATE INDEX ingest_dead_letter_mapping_idx ON ingest_dead_letter (mapping, received_at DESC)');
    },
  },
  {
    version: 3,
    name: 'transactional outbox of committed changes',
    async up(tx) {
      // Written in the same statement as each change, drained to the job queue after commit:
      // a change committed but not yet matched against subscriptions survives a crash.
      await tx.query(
        `CREATE TABLE change_outbox (seq bigserial primary key, resource_type text not null, id text not null,
         version_id integer not null, interaction text not null, created_at timestamptz not null default now())`,
      );
    },
  },
];

const LOCK_ID = 0x56_49_47_49; // "VIGI"

export async function migrate(db: Database): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.query(
      'CREATE TABLE IF NOT EXISTS vigil_migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())',
    );
    const done = new Set((await tx.query<{ version: number }>('SELECT version FROM vigil_migrations')).map((r) => r.version));
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await m.up(tx);
      await tx.query('INSERT INTO vigil_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
  });
}
