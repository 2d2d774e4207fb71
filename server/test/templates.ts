import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadModel } from '../src/main.ts';
import { migrate, schemaFingerprint } from '../src/store/migrate.ts';
import { openPGlite } from '../src/store/pglite.ts';
import { openPostgres } from '../src/store/postgres.ts';

/*
 * Migrating an empty database creates thousands of tables and indexes: seconds of work that every
 * suite would repeat. Suites start from a migrated copy instead, built once per schema fingerprint
 * and shared by all test processes: a PGlite dump in the temp directory, a PostgreSQL template
 * database. A changed migration or search parameter changes the fingerprint, hence the copy.
 */

let fingerprint: string | undefined;
function currentFingerprint(): string {
  loadModel(); // all of it, as start-up would: the loaders share one parse of the R4 bundles
  fingerprint ??= schemaFingerprint();
  return fingerprint;
}

let snapshot: Promise<Blob> | undefined;

/** A migrated PGlite data directory, as a dump that `openPGlite` loads. */
export function pgliteSnapshot(): Promise<Blob> {
  snapshot ??= loadSnapshot();
  return snapshot;
}

async function loadSnapshot(): Promise<Blob> {
  const file = join(tmpdir(), `vigil-test-pglite-${currentFingerprint()}.tar.gz`);
  if (!existsSync(file)) {
    const db = await openPGlite('memory://');
    await migrate(db);
    const dump = await db.dump();
    await db.close();
    // written whole, then renamed: a concurrent builder's file is complete either way
    const partial = `${file}.${process.pid}`;
    writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
    renameSync(partial, file);
  }
  return new Blob([readFileSync(file)]);
}

const TEMPLATE_LOCK = 0x56_49_47_54; // "VIGT"

/**
 * The name of a migrated template database on the server `admin` is connected to, built under an
 * advisory lock by the first process that needs it. Templates of other fingerprints are dropped
 * then, unless something still uses them.
 */
export async function postgresTemplate(admin: pg.Client, adminUrl: string): Promise<string> {
  const name = `vigil_template_${currentFingerprint()}`;
  await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK]);
  try {
    if ((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount) return name;
    const building = `${name}_build`;
    await admin.query(`DROP DATABASE IF EXISTS ${building}`);
    await admin.query(`CREATE DATABASE ${building}`);
    const url = new URL(adminUrl);
    url.pathname = `/${building}`;
    const db = await openPostgres(url.toString());
    await migrate(db);
    await db.close();
    await admin.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
    const stale = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'vigil\\_template\\_%' AND datname <> $1`, [name]);
    for (const { datname } of stale.rows) await admin.query(`DROP DATABASE IF EXISTS ${datname}`).catch(() => {});
    return name;
  } finally {
    await admin.query('SELECT pg_advisory_unlock($1)', [TEMPLATE_LOCK]);
  }
}
