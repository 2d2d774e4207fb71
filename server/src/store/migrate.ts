import { createHash } from 'node:crypto';
import type { Database, Sql } from './database.ts';
import { backfillDateRanges } from './date-ranges.ts';
import { dateRangesDdl, dateSpanDdl, identifierIndexDdl, inlineRowsDdl, redundantIndexDdl, schemaDdl } from './schema.ts';

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
  {
    version: 4,
    name: 'authorization server: oidc-provider payloads, signing keys, users',
    async up(tx) {
      // oidc-provider's models (sessions, grants, codes, refresh tokens, clients, replay detection) as JSON,
      // each with the lookup keys its adapter contract asks for.
      await tx.query(
        `CREATE TABLE oidc_payload (kind text not null, id text not null, payload jsonb not null, grant_id text, uid text,
         user_code text, expires_at timestamptz, consumed_at timestamptz, primary key (kind, id))`,
      );
      await tx.query('CREATE INDEX oidc_payload_grant_idx ON oidc_payload (grant_id) WHERE grant_id IS NOT NULL');
      await tx.query('CREATE INDEX oidc_payload_uid_idx ON oidc_payload (uid) WHERE uid IS NOT NULL');
      await tx.query('CREATE INDEX oidc_payload_expires_idx ON oidc_payload (expires_at) WHERE expires_at IS NOT NULL');
      // Private JWKs shared by every replica; the newest signs, older ones still verify.
      await tx.query('CREATE TABLE auth_key (kid text primary key, use text not null, jwk jsonb not null, created_at timestamptz not null default now())');
      await tx.query(
        `CREATE TABLE auth_user (username text primary key, password_hash text not null, fhir_user text not null,
         failed_attempts integer not null default 0, locked_until timestamptz, created_at timestamptz not null default now())`,
      );
    },
  },
  {
    version: 5,
    name: 'subscription events, heartbeats and websocket binding tokens',
    async up(tx) {
      // every event a subscription has had, numbered per subscription (R5 events-since-subscription-start,
      // $events); the job id makes numbering a retried delivery idempotent
      await tx.query(
        `CREATE TABLE subscription_event (subscription_id text not null, event_number bigint not null,
         job_id text not null unique, focus_type text, focus_id text, focus_version integer, interaction text,
         created_at timestamptz not null default now(), primary key (subscription_id, event_number))`,
      );
      await tx.query('CREATE TABLE subscription_heartbeat (subscription_id text primary key, last_sent_at timestamptz not null)');
      await tx.query('CREATE TABLE subscription_ws_token (token text primary key, subscription_ids text[] not null, expires_at timestamptz not null)');
    },
  },
  {
    version: 6,
    name: 'Observation (patient, code, date) index for $lastn',
    async up(tx) {
      // $lastn steps through each patient's distinct codes on this index (a loose index scan)
      await tx.query('CREATE INDEX IF NOT EXISTS "Observation_patient_code_date_start_idx" ON "Observation" ("patient", "code", "date_start")');
    },
  },
  {
    version: 7,
    name: 'resource rows inline, uncompressed, up to a page',
    async up(tx) {
      for (const statement of inlineRowsDdl()) await tx.query(statement);
    },
  },
  {
    version: 8,
    name: 'identifier indexes without a GIN pending list',
    async up(tx) {
      for (const statement of identifierIndexDdl()) await tx.query(statement);
    },
  },
  {
    version: 9,
    name: 'ingest identities claimed by a unique key',
    async up(tx) {
      // A batch claims its readings' identities by inserting them: a concurrent batch with one of
      // them waits on the unique key until the first commits, with no lock-table entry per reading
      // (an advisory lock each filled PostgreSQL's shared lock table at ~6,400 readings).
      await tx.query('CREATE TABLE ingest_identity (identifier text primary key)');
      // the readings stored so far, by their identifier in the ingest system (urn:vigil:ingest)
      await tx.query(
        `INSERT INTO ingest_identity (identifier) SELECT DISTINCT substr(i, length('urn:vigil:ingest|') + 1) FROM "Observation", unnest(identifier) i
         WHERE starts_with(i, 'urn:vigil:ingest|')`,
      );
    },
  },
  {
    version: 10,
    name: 'longest date range per type and parameter, kept by statement triggers',
    async up(tx) {
      for (const statement of dateSpanDdl()) await tx.query(statement);
    },
  },
  {
    version: 11,
    name: 'no single-column B-tree where a composite index leads with its column',
    async up(tx) {
      for (const statement of redundantIndexDdl()) await tx.query(statement);
    },
  },
  {
    version: 12,
    name: 'each range of a date parameter holding several, searched one by one',
    async up(tx) {
      for (const statement of dateRangesDdl()) await tx.query(statement);
      await backfillDateRanges(tx);
    },
  },
  {
    version: 13,
    name: 'outbox rows taken by an in-process queue, kept until it has run them',
    async up(tx) {
      await tx.query('ALTER TABLE change_outbox ADD COLUMN IF NOT EXISTS taken boolean NOT NULL DEFAULT false');
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

/**
 * Identifies the schema the migrations build (their code and the generated DDL): databases migrated
 * from the same fingerprint are interchangeable, so a migrated copy can stand in for a migration.
 */
export function schemaFingerprint(): string {
  const hash = createHash('sha256');
  for (const m of MIGRATIONS) hash.update(`${m.version}\0${m.name}\0${m.up.toString()}\0`);
  for (const statement of [...schemaDdl(), ...inlineRowsDdl(), ...identifierIndexDdl(), ...dateSpanDdl(), ...redundantIndexDdl(), ...dateRangesDdl()]) hash.update(`${statement}\0`);
  return hash.digest('hex').slice(0, 16);
}
