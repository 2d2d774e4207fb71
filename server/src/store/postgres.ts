import pg from 'pg';
import { type Database, type QueryOptions, type Sql, isoTimestamp } from './database.ts';

// Timestamps travel as ISO instants and bigints as numbers, identically to PGlite's results.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 1184) return isoTimestamp;
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

export async function openPostgres(url: string, max = Number(process.env.VIGIL_DB_POOL_SIZE ?? 20)): Promise<Database> {
  // No JIT: it triggers on estimated cost, which default selectivities of array columns inflate in
  // proportion to the table; compiling an ingest batch's identifier lookup took ~0.4 s to run 5 ms.
  // A SET on each new connection rather than a startup option, which connection poolers refuse.
  const onConnect = async (client: pg.ClientBase) => void (await client.query('SET jit = off'));
  const pool = new pg.Pool({ connectionString: url, max, types, onConnect });
  pool.on('error', () => undefined); // an idle client's error is followed by reconnection on next use
  await pool.query('SELECT 1');
  const run = (client: pg.Pool | pg.PoolClient): Sql => ({
    async query<T>(text: string, params?: unknown[], options?: QueryOptions) {
      const name = params?.length && !options?.customPlan ? statementName(text) : undefined;
      return (await client.query({ name, text, values: params })).rows as T[];
    },
  });
  return {
    kind: 'postgres',
    ...run(pool),
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(run(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => pool.end(),
  };
}

/**
 * Statements are prepared once per connection and reused, sparing PostgreSQL the parse and plan of
 * hot queries. Only the first MAX_PREPARED distinct texts get names, bounding server memory when
 * search shapes vary without limit; statements without parameters (the migrations' DDL, BEGIN)
 * get none, else the thousands of DDL texts of a first start took every name before any query ran.
 */
const MAX_PREPARED = 500;
const names = new Map<string, string>();
function statementName(text: string): string | undefined {
  let name = names.get(text);
  if (!name && names.size < MAX_PREPARED) {
    name = `vigil_${names.size}`;
    names.set(text, name);
  }
  return name;
}
