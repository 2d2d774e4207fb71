import { mkdirSync } from 'node:fs';
import { PGlite, types } from '@electric-sql/pglite';
import { type Database, type Sql, isoTimestamp } from './database.ts';

const parsers = {
  [types.TIMESTAMPTZ]: isoTimestamp,
  [types.INT8]: (v: string) => Number(v),
};

/**
 * Embedded PostgreSQL (WASM) keeping its data under dataDir; `memory://` keeps nothing. A snapshot
 * (a `dumpDataDir()` tarball) seeds an empty data directory instead of a fresh initdb.
 */
export async function openPGlite(dataDir: string, snapshot?: Blob): Promise<Database & { dump(): Promise<Blob> }> {
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir, { parsers, loadDataDir: snapshot });
  const run = (q: Pick<PGlite, 'query'>): Sql => ({
    async query<T>(text: string, params?: unknown[]) {
      return (await q.query<T>(text, params)).rows;
    },
  });
  return {
    kind: 'pglite',
    ...run(db),
    transaction: (fn) => db.transaction((tx) => fn(run(tx))),
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    close: () => db.close(),
    async dump() {
      await db.query('CHECKPOINT'); // a restore then starts without replaying the write-ahead log
      return db.dumpDataDir('gzip');
    },
  };
}
