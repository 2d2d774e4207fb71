import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { startAutovacuum } from '../server/src/store/autovacuum.ts';

/** Shared pieces of the benchmarks: a bench database, a Vigil child process, an HTTP load generator. */

export const ADMIN_URL = process.env.VIGIL_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function recreateDatabase(name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return databaseUrl(name);
}

export function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** `VIGIL_BENCH_CPU_PROFILE=<dir>`: each bench server writes a V8 CPU profile there when it exits. */
function profiling(): string[] {
  const dir = process.env.VIGIL_BENCH_CPU_PROFILE;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/**
 * Node's flags for the server, as `npm start` gives them: young-generation space for a server that
 * parses and builds JSON all day (the default 16 MB semi-space made scavenges ~10% of its time).
 */
const NODE_FLAGS = ['--max-semi-space-size=64'];

/** The bootstrap client every bench server runs with; also the MQTT credentials. */
export const CLIENT_ID = 'vigil-bench';
export const CLIENT_SECRET = randomBytes(24).toString('hex');

/**
 * Vigil in its own process, so that the load generator does not share its event loop. It runs with
 * a bootstrap client whose token `http()` sends.
 */
export async function startServer(databaseUrl: string, port: number, env: Record<string, string> = {}): Promise<{ base: string; child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [...NODE_FLAGS, ...profiling(), 'server/src/main.ts'], {
    env: {
      // The API tier, as api replicas run it: subscription matching and bots belong to worker replicas.
      ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', MQTT_PORT: '0', VIGIL_ROLE: 'api',
      VIGIL_BOOTSTRAP_CLIENT_ID: CLIENT_ID, VIGIL_BOOTSTRAP_CLIENT_SECRET: CLIENT_SECRET, ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 480; i++) { // up to 2 min: start-up is slow on a loaded machine
    try {
      // a connection taken while Vigil is still starting may never be answered: give up on it and ask again
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) break;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await renewToken(base);
  const release = await autovacuumStandIn(databaseUrl);
  return {
    base,
    child,
    async stop() {
      await release();
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const standIns = new Map<string, { servers: number; stop: () => Promise<void> }>();

/**
 * A deployment's PostgreSQL runs autovacuum; CI's here does not, and a bench database then grows with
 * no statistics at all, so plans rest on default selectivities (bench alerts read `$lastn`'s windows
 * through the wrong index) and the figures leave out vacuuming. Benches then run Vigil's own rounds
 * for it: autovacuum's default thresholds, sample and throttling, every minute, on one connection,
 * while any of their servers is up.
 */
async function autovacuumStandIn(databaseUrl: string): Promise<() => Promise<void>> {
  let standIn = standIns.get(databaseUrl);
  if (!standIn) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    if ((await client.query<{ autovacuum: string }>('SHOW autovacuum')).rows[0].autovacuum === 'on') {
      await client.end();
      return async () => undefined;
    }
    console.log('  (PostgreSQL runs no autovacuum here: the bench runs its rounds, default thresholds and sample, every minute)');
    // autovacuum's default cost delay and limit
    await client.query(`SET vacuum_cost_delay = '2ms'; SET vacuum_cost_limit = 200`);
    const sql = { query: async <T>(text: string, params?: unknown[]) => (await client.query(text, params)).rows as T[] };
    const stopRounds = startAutovacuum(sql, (err) => console.error('autovacuum round failed:', err), 60_000, { sampleTarget: 100 });
    standIn = { servers: 0, stop: async () => { await stopRounds(); await client.end(); } };
    standIns.set(databaseUrl, standIn);
  }
  standIn.servers++;
  const owned = standIn;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    if (--owned.servers > 0) return;
    standIns.delete(databaseUrl);
    await owned.stop();
  };
}

let authorization: string | undefined;
let tokenBase = '';
let tokenAt = 0;
/** Backend-service tokens live 5 minutes; benches outlast that. */
const RENEW_AFTER_MS = 200_000;

/** A system token for the bench client (bearer tokens live minutes; benches renew before each phase). */
async function clientCredentialsToken(base: string): Promise<string | undefined> {
  const res = await fetch(`${base}/oauth2/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=system/*.*',
  });
  if (res.status === 404) return undefined; // a server without the authorization server
  if (!res.ok) throw new Error(`token: ${res.status} ${await res.text()}`);
  return `Bearer ${((await res.json()) as { access_token: string }).access_token}`;
}

export async function renewToken(base: string): Promise<void> {
  authorization = await clientCredentialsToken(base);
  tokenBase = base;
  tokenAt = Date.now();
}

/**
 * Idle connections are dropped after 4 s, before the server's keep-alive timeout (Node's 5 s) closes
 * them: a request sent on a connection as the server closes it fails with ECONNRESET.
 */
const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 4_000 });

export async function http(method: string, url: string, body?: string): Promise<{ status: number; body: string }> {
  if (authorization && Date.now() - tokenAt > RENEW_AFTER_MS) await renewToken(tokenBase);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = body ? { 'content-type': 'application/fhir+json' } : {};
    if (authorization) headers.authorization = authorization;
    const req = request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The CPU seconds a bench server has used so far, from its /metrics: steadier than rates on a shared machine. */
export async function serverCpuSeconds(base: string): Promise<number> {
  const res = await http('GET', `${base}/metrics`);
  const line = res.body.split('\n').find((l) => l.startsWith('process_cpu_seconds_total '));
  if (!line) throw new Error(`no process_cpu_seconds_total at ${base}/metrics (${res.status})`);
  return Number(line.split(' ')[1]);
}

/** Runs `total` calls of `task` with `concurrency` in flight; returns per-call latencies (ms) and rate. */
export async function load(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = new Array(total);
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        await task(i);
        latencies[i] = performance.now() - t0;
      }
    }),
  );
  return { perSecond: total / ((performance.now() - start) / 1000), latencies };
}

export function percentiles(values: number[]): { p50: number; p95: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

/**
 * p50/p99 of the samples in each slice of `sliceMs` from `from`, by when each sample's cause
 * happened (a commit): a run that falls behind shows as a rising line.
 */
export function timeline(samples: readonly { at: number; value: number }[], from: number, sliceMs: number): string {
  const slices = new Map<number, number[]>();
  for (const { at, value } of samples) {
    const slice = Math.floor((at - from) / sliceMs);
    let values = slices.get(slice);
    if (!values) slices.set(slice, (values = []));
    values.push(value);
  }
  return [...slices]
    .sort(([a], [b]) => a - b)
    .map(([slice, values]) => {
      const { p50, p99 } = percentiles(values);
      return `${fmt((slice * sliceMs) / 1000)} s ${fmt(p50)}/${fmt(p99)}`;
    })
    .join(', ');
}

export const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * The ceiling every bench prints: the Observation rows the run committed, copied raw (COPY) into an
 * unlogged table on the same server; rows per second.
 */
export async function rawCopyRate(client: pg.Client): Promise<{ rows: number; perSecond: number }> {
  const rows = (await client.query<{ id: string; content: string }>('SELECT id, content FROM "Observation" LIMIT 200000')).rows;
  await client.query('DROP TABLE IF EXISTS raw_copy');
  await client.query('CREATE UNLOGGED TABLE raw_copy (id text, content text)');
  const c0 = performance.now();
  await pipeline(Readable.from(rows.map((r) => `${r.id}\t${r.content.replaceAll('\\', '\\\\')}\n`)), client.query(copyFrom('COPY raw_copy (id, content) FROM STDIN')));
  return { rows: rows.length, perSecond: rows.length / ((performance.now() - c0) / 1000) };
}
