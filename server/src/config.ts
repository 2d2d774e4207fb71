import { resolve } from 'node:path';
import { type AuthConfig, loadAuthConfig } from './auth/config.ts';
import { loadSubscriptionConfig, type SubscriptionConfig } from './subscriptions/config.ts';

/** Everything Vigil reads from its environment, with the embedded defaults. */
export interface Config {
  port: number;
  baseUrl: string;
  dataDir: string;
  /** Seeds an empty embedded data directory from a PGlite dump (set in code, not from the environment). */
  dataSnapshot?: Blob;
  databaseUrl?: string;
  redisUrl?: string;
  /** How long a BullMQ job stays claimed by a worker that stopped renewing it (crashed) before another runs it. */
  jobLockMs: number;
  /** External MQTT broker; when unset, the embedded broker listens on `mqttPort` (0: none). */
  mqttUrl?: string;
  mqttPort: number;
  /** The embedded broker's listening address. */
  mqttHost: string;
  logLevel: string;
  demo: boolean;
  role: 'all' | 'api' | 'worker';
  maxBodyBytes: number;
  /** Confidential client with system/*.* created (or updated) at start-up, for operators and automation. */
  bootstrapClientId?: string;
  bootstrapClientSecret?: string;
  /** Behind a TLS-offloading proxy: trust X-Forwarded-* for the authorization server's URLs. */
  trustProxy: boolean;
  /** Bot runs in flight per worker process: runs wait on the database, not the CPU. */
  botConcurrency: number;
  subscriptions: SubscriptionConfig;
  auth: AuthConfig;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = integer(env.PORT, 8103, 'PORT');
  const databaseUrl = env.DATABASE_URL || undefined;
  const role = env.VIGIL_ROLE ?? 'all';
  if (role !== 'all' && role !== 'api' && role !== 'worker') {
    throw new Error(`VIGIL_ROLE must be all, api or worker, not "${role}"`);
  }
  return {
    port,
    baseUrl: (env.VIGIL_BASE_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    dataDir: resolve(env.VIGIL_DATA_DIR ?? '.vigil/data'),
    databaseUrl,
    redisUrl: env.REDIS_URL || undefined,
    jobLockMs: jobLockSeconds(env.VIGIL_JOB_LOCK_SECONDS) * 1000,
    mqttUrl: env.MQTT_URL || undefined,
    mqttPort: integer(env.MQTT_PORT, 1883, 'MQTT_PORT'),
    mqttHost: env.MQTT_HOST || '127.0.0.1',
    logLevel: env.LOG_LEVEL ?? 'info',
    // Demo data only makes sense for the embedded store; a real database starts empty unless asked.
    demo: env.VIGIL_DEMO ? env.VIGIL_DEMO !== 'off' : !databaseUrl,
    role,
    maxBodyBytes: integer(env.VIGIL_MAX_BODY_BYTES, 16 * 1024 * 1024, 'VIGIL_MAX_BODY_BYTES'),
    bootstrapClientId: env.VIGIL_BOOTSTRAP_CLIENT_ID || undefined,
    bootstrapClientSecret: env.VIGIL_BOOTSTRAP_CLIENT_SECRET || undefined,
    trustProxy: env.VIGIL_TRUST_PROXY === 'on',
    botConcurrency: integer(env.VIGIL_BOT_CONCURRENCY, 32, 'VIGIL_BOT_CONCURRENCY'),
    subscriptions: loadSubscriptionConfig(env),
    auth: loadAuthConfig(env),
  };
}

/** Shorter locks lapse while a busy worker (a long synchronous stretch, a GC pause) still runs the job. */
function jobLockSeconds(value: string | undefined): number {
  const seconds = integer(value, 30, 'VIGIL_JOB_LOCK_SECONDS');
  if (seconds < 10) throw new Error(`VIGIL_JOB_LOCK_SECONDS must be at least 10, not "${value}"`);
  return seconds;
}

function integer(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') {
    return fallback;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${name} must be a non-negative integer, not "${value}"`);
  }
  return n;
}
