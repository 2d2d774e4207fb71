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
  /** `VIGIL_BOTS=off`: this Vigil runs no bots (they run elsewhere, e.g. a Vigil that has this one as its external store). */
  botsEnabled: boolean;
  /** Bots run on this external FHIR server, subscribed there, instead of on Vigil's own store. */
  externalBots?: ExternalBotsConfig;
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
    botsEnabled: onOff(env.VIGIL_BOTS, true, 'VIGIL_BOTS'),
    externalBots: loadExternalBotsConfig(env),
    subscriptions: loadSubscriptionConfig(env),
    auth: loadAuthConfig(env),
  };
}

/** Bots on an external FHIR R4 server (HAPI, another Vigil, …) instead of Vigil's own store. */
export interface ExternalBotsConfig {
  fhirUrl: string;
  /** OAuth 2 client_credentials for the server; none for a server that asks for no token. */
  credentials?: { tokenUrl: string; clientId: string; clientSecret: string; scope?: string };
  /** Where the server sends notifications: this replica's `/bots/notify` as the server reaches it (default under `VIGIL_BASE_URL`). */
  notifyUrl?: string;
  /** The bearer secret each notification must carry; it is given to the server in the Subscriptions. */
  notifySecret: string;
}

const MIN_SECRET_LENGTH = 32;

function loadExternalBotsConfig(env: NodeJS.ProcessEnv): ExternalBotsConfig | undefined {
  const fhirUrl = env.VIGIL_BOTS_FHIR_URL || undefined;
  if (!fhirUrl) return undefined;
  const notifySecret = env.VIGIL_BOTS_NOTIFY_SECRET ?? '';
  if (notifySecret.length < MIN_SECRET_LENGTH) throw new Error(`VIGIL_BOTS_NOTIFY_SECRET must be set, at least ${MIN_SECRET_LENGTH} characters, with VIGIL_BOTS_FHIR_URL`);
  const clientId = env.VIGIL_BOTS_FHIR_CLIENT_ID || undefined;
  const clientSecret = env.VIGIL_BOTS_FHIR_CLIENT_SECRET || undefined;
  const tokenUrl = env.VIGIL_BOTS_FHIR_TOKEN_URL || undefined;
  if ((clientId || clientSecret || tokenUrl) && !(clientId && clientSecret && tokenUrl)) {
    throw new Error('VIGIL_BOTS_FHIR_TOKEN_URL, VIGIL_BOTS_FHIR_CLIENT_ID and VIGIL_BOTS_FHIR_CLIENT_SECRET go together');
  }
  return {
    fhirUrl,
    credentials: clientId && clientSecret && tokenUrl ? { tokenUrl, clientId, clientSecret, scope: env.VIGIL_BOTS_FHIR_SCOPE || undefined } : undefined,
    notifyUrl: env.VIGIL_BOTS_NOTIFY_URL?.replace(/\/+$/, '') || undefined,
    notifySecret,
  };
}

function onOff(value: string | undefined, fallback: boolean, name: string): boolean {
  if (value === undefined || value === '') return fallback;
  if (value !== 'on' && value !== 'off') throw new Error(`${name} must be on or off, not "${value}"`);
  return value === 'on';
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
