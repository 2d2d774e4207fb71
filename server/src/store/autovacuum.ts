import type { Sql } from './database.ts';
import { quote } from './columns.ts';

export interface RoundOptions {
  /** `default_statistics_target` for ANALYZE: a sample of 300 rows per unit. */
  sampleTarget?: number;
}

/**
 * A tenth of PostgreSQL's default sample (3,000 rows): analysing the Observation table's hundred
 * search columns at the default took 2 s of the one connection, at this target 0.1 s (30,000 rows).
 */
const EMBEDDED_SAMPLE_TARGET = 10;

/**
 * PostgreSQL's autovacuum for the embedded engine, which has none: PGlite is one backend, so no
 * launcher ever runs. Without it no table is ever analysed (the planner knows tables' sizes from
 * their pages but guesses every condition's selectivity), and the dead row versions that updates
 * and deletes leave are never reclaimed, so the data directory grows with every Flag or Device update.
 *
 * One round applies autovacuum's default thresholds to PGlite's own table statistics, one table at a
 * time. The engine serves one statement at a time, so a round holds requests up for as long as it
 * runs; the thresholds grow with the table, so big tables are visited seldom. (The benches also run
 * rounds, with PostgreSQL's own sample, on a PostgreSQL whose autovacuum is off.) `sql` must be one
 * connection: the sample size is a session setting.
 */
export async function autovacuum(sql: Sql, { sampleTarget = EMBEDDED_SAMPLE_TARGET }: RoundOptions = {}): Promise<{ vacuumed: string[]; analyzed: string[] }> {
  // The backend reports its counters only now and then (never while idle); make the next statement
  // report them, so that this round sees every write so far.
  await sql.query('SELECT pg_stat_force_next_flush()');
  const due = await sql.query<{ name: string; vacuum: boolean; analyze: boolean }>(
    `SELECT * FROM (
       SELECT s.relname AS name,
              (s.n_dead_tup > 50 + 0.2 * t.tuples OR s.n_ins_since_vacuum > 1000 + 0.2 * t.tuples) AS vacuum,
              s.n_mod_since_analyze > 50 + 0.1 * t.tuples AS analyze
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid, LATERAL (SELECT greatest(c.reltuples, 0) AS tuples) t
        WHERE s.schemaname = 'public') due
      WHERE due.vacuum OR due.analyze
      ORDER BY name`,
  );
  const vacuumed: string[] = [];
  const analyzed: string[] = [];
  if (!due.length) return { vacuumed, analyzed };
  await sql.query(`SET default_statistics_target = ${Number(sampleTarget)}`);
  try {
    for (const table of due) {
      if (table.vacuum) {
        await sql.query(`VACUUM ${table.analyze ? '(ANALYZE) ' : ''}${quote(table.name)}`);
        vacuumed.push(table.name);
      } else {
        await sql.query(`ANALYZE ${quote(table.name)}`);
      }
      if (table.analyze) analyzed.push(table.name);
    }
  } finally {
    await sql.query('RESET default_statistics_target');
  }
  return { vacuumed, analyzed };
}

/**
 * Runs a round every intervalMs (autovacuum's naptime) until the returned function is called; that
 * function resolves once a round under way has finished, so the database can be closed after it.
 */
export function startAutovacuum(sql: Sql, onError: (err: unknown) => void, intervalMs = 60_000, options: RoundOptions = {}): () => Promise<void> {
  let round: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    round = round.then(() => autovacuum(sql, options)).catch(onError);
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await round;
  };
}
