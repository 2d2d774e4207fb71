import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { startVigil, type Vigil } from '../src/main.ts';

/** Every database-backed suite runs against both engines: embedded PGlite and a real PostgreSQL. */
export const DRIVERS = ['pglite', 'postgres'] as const;
export type Driver = (typeof DRIVERS)[number];

const ADMIN_URL = process.env.VIGIL_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh, empty PostgreSQL database for one suite; dropped by the returned function. */
export async function freshPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `vigil_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface TestServer {
  vigil: Vigil;
  base: string;
  fhir: string;
}

/**
 * Starts a real Vigil on a free port for the enclosing suite, on a fresh database of the given
 * engine, and stops it (dropping the database) afterwards. Use inside `describe`.
 */
export function useServer(driver: Driver, env: Record<string, string> = {}): TestServer {
  const server = {} as TestServer;
  let drop: (() => Promise<void>) | undefined;
  before(async () => {
    let databaseUrl = '';
    if (driver === 'postgres') {
      const db = await freshPostgresDatabase();
      databaseUrl = db.url;
      drop = db.drop;
    }
    const config = loadConfig({
      PORT: '0',
      LOG_LEVEL: 'warn',
      VIGIL_DEMO: 'off',
      VIGIL_DATA_DIR: 'memory://',
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      ...env,
    });
    config.dataDir = 'memory://';
    const vigil = await startVigil(config);
    const base = vigil.config.baseUrl;
    Object.assign(server, { vigil, base, fhir: `${base}/fhir/R4` });
  });
  after(async () => {
    await server.vigil?.stop();
    await drop?.();
  });
  return server;
}

export interface FhirResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** A FHIR JSON request; the body is parsed when there is one. */
export async function request<T = any>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<FhirResponse<T>> {
  const res = await fetch(url, {
    method,
    headers: { accept: 'application/fhir+json', ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}
