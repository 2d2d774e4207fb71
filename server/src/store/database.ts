/** The one seam between Vigil and its SQL engine: PostgreSQL (pg) or embedded PGlite run the same SQL. */
export interface Sql {
  query<T = Record<string, unknown>>(text: string, params?: unknown[], options?: QueryOptions): Promise<T[]>;
}

export interface QueryOptions {
  /**
   * Plan the statement for these values, not once for any values: for a statement whose best plan
   * depends on them (PostgreSQL prepares the others and may settle on a generic plan; PGlite plans
   * every statement anew).
   */
  customPlan?: boolean;
}

export interface Database extends Sql {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one database transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /** Connection-pool figures for /metrics. */
  poolStats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

export async function openDatabase(options: { databaseUrl?: string; dataDir: string; dataSnapshot?: Blob }): Promise<Database> {
  if (options.databaseUrl) {
    const { openPostgres } = await import('./postgres.ts');
    return openPostgres(options.databaseUrl);
  }
  const { openPGlite } = await import('./pglite.ts');
  return openPGlite(options.dataDir, options.dataSnapshot);
}

/** A timestamptz as PostgreSQL writes it in UTC, the server's zone: date, time, up to 6 fraction digits. */
const UTC_TIMESTAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/;

/**
 * PostgreSQL's timestamptz text (`2024-01-01 10:00:00.123+00`) as an ISO instant, from both drivers.
 * Every timestamp read goes through it: a UTC one is rewritten as text (a tenth of the cost of a Date
 * round trip), to milliseconds as Date would give them; other zones and forms go through Date.
 */
export function isoTimestamp(text: string): string {
  const utc = UTC_TIMESTAMP.exec(text);
  if (utc) return `${utc[1]}T${utc[2]}.${(utc[3] ?? '').padEnd(3, '0').slice(0, 3)}Z`;
  if (text === 'infinity' || text === '-infinity') return text;
  const iso = text.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00');
  return new Date(iso).toISOString();
}
