import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { startVigil, type Vigil } from '../src/main.ts';
import { pgliteSnapshot, postgresTemplate } from './templates.ts';

/** Every database-backed suite runs against both engines: embedded PGlite and a real PostgreSQL. */
export const DRIVERS = ['pglite', 'postgres'] as const;
export type Driver = (typeof DRIVERS)[number];

/** A new resource's id (`newResourceId`). */
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const ADMIN_URL = process.env.VIGIL_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * A fresh PostgreSQL database for one suite, already migrated (a copy of the template) unless
 * `empty`; dropped by the returned function.
 */
export async function freshPostgresDatabase({ empty = false } = {}): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `vigil_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    const template = empty ? undefined : await postgresTemplate(admin, ADMIN_URL);
    await admin.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
  } finally {
    await admin.end();
  }
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
  /** The bootstrap client (system/*.*) registered for the suite. */
  clientId: string;
  clientSecret: string;
  /** A system/*.* access token from that client; `request()` sends it unless told otherwise. */
  token: string;
}

/**
 * The token `request()` sends by default: the bootstrap client's of the most recently started test
 * server, renewed before its 5-minute lifetime runs out.
 */
let defaultToken: string | undefined;
let renew: { vigil: Vigil; at: number } | undefined;
const RENEW_AFTER_MS = 200_000;

/** A client_credentials token (client_secret_basic) from a running Vigil. */
export async function clientCredentialsToken(base: string, clientId: string, clientSecret: string, scope = 'system/*.*'): Promise<string> {
  const res = await fetch(`${base}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string };
  if (!body.access_token) throw new Error(`client_credentials failed: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/** Test env for a Vigil with a bootstrap system client; pair with `bootstrapToken`. */
export function bootstrapEnv(): { VIGIL_BOOTSTRAP_CLIENT_ID: string; VIGIL_BOOTSTRAP_CLIENT_SECRET: string } {
  return { VIGIL_BOOTSTRAP_CLIENT_ID: `test-${randomBytes(4).toString('hex')}`, VIGIL_BOOTSTRAP_CLIENT_SECRET: randomBytes(24).toString('base64url') };
}

/** A system/*.* token from a Vigil started with `bootstrapEnv()`; also becomes `request()`'s default. */
export async function bootstrapToken(vigil: Vigil): Promise<string> {
  const token = await clientCredentialsToken(vigil.config.baseUrl, vigil.config.bootstrapClientId as string, vigil.config.bootstrapClientSecret as string);
  defaultToken = token;
  renew = { vigil, at: Date.now() + RENEW_AFTER_MS };
  return token;
}

/** The default system token's header, renewed first when it is about to expire (for long tests using fetch). */
export async function currentAuth(): Promise<Record<string, string>> {
  if (renew && Date.now() > renew.at) await bootstrapToken(renew.vigil);
  return authHeader();
}

/** Headers carrying a bearer token (the default system token unless one is given). */
export function authHeader(token: string | undefined = defaultToken): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A quiet in-process Vigil on a free port: no demo, no MQTT broker, PGlite in memory unless told otherwise. */
export const TEST_ENV = { PORT: '0', LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', MQTT_PORT: '0', VIGIL_DATA_DIR: 'memory://' } as const;

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
      ...TEST_ENV,
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      ...bootstrapEnv(),
      ...env,
    });
    config.dataDir = 'memory://';
    if (driver === 'pglite') config.dataSnapshot = await pgliteSnapshot();
    const vigil = await startVigil(config);
    const base = vigil.config.baseUrl;
    const token = await bootstrapToken(vigil);
    Object.assign(server, { vigil, base, fhir: `${base}/fhir/R4`, clientId: vigil.config.bootstrapClientId, clientSecret: vigil.config.bootstrapClientSecret, token });
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

/**
 * A FHIR JSON request; the body is parsed when there is one. It sends the current test server's
 * system token unless `headers` has its own `authorization` (an empty one sends none).
 */
export async function request<T = any>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<FhirResponse<T>> {
  const { authorization, ...rest } = headers;
  if (authorization === undefined && renew && Date.now() > renew.at) await bootstrapToken(renew.vigil);
  const auth = authorization === undefined ? authHeader() : authorization ? { authorization } : {};
  const res = await fetch(url, {
    method,
    headers: { accept: 'application/fhir+json', ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}), ...auth, ...rest },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** A TCP port nothing listens on right now (for a broker or server a test starts itself). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface VigilProcess {
  child: ChildProcess;
  /** SIGKILL: no shutdown of any kind, as in a crash. */
  kill(): Promise<void>;
  /** SIGTERM: the graceful shutdown. */
  stop(): Promise<void>;
}

/**
 * Vigil as a child process (`server/src/main.ts` with `env` over a quiet, demo-free default), for
 * tests that kill it; resolves once it listens.
 */
export async function spawnVigil(env: Record<string, string>): Promise<VigilProcess> {
  const child = spawn(process.execPath, [new URL('../src/main.ts', import.meta.url).pathname], {
    env: { ...process.env, PORT: '0', MQTT_PORT: '0', VIGIL_DEMO: 'off', REDIS_URL: '', MQTT_URL: '', ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    child.once('exit', (code, signal) => reject(new Error(`Vigil exited (${code ?? signal}) before listening`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (buffered + chunk.toString()).split('\n');
      buffered = lines.pop() as string;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { level: number; msg: string };
        if (entry.msg === 'Vigil is listening') resolve();
        else if (entry.level >= 40) process.stderr.write(`${line}\n`);
      }
    });
  });
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { child, kill: () => end('SIGKILL'), stop: () => end('SIGTERM') };
}

/** A server's /metrics, read once: the value of a series, written as Prometheus prints it (`name{label="v",…}`); NaN when absent. */
export async function scrape(base: string): Promise<(series: string) => number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return (series) => Number(new RegExp(`^${series.replace(/[{}"+]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}
