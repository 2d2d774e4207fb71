import { resolve } from 'node:path';

/** Everything Vigil reads from its environment, with the embedded defaults. */
export interface Config {
  port: number;
  baseUrl: string;
  dataDir: string;
  databaseUrl?: string;
  redisUrl?: string;
  logLevel: string;
  demo: boolean;
  role: 'all' | 'api' | 'worker';
  maxBodyBytes: number;
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
    logLevel: env.LOG_LEVEL ?? 'info',
    // Demo data only makes sense for the embedded store; a real database starts empty unless asked.
    demo: env.VIGIL_DEMO ? env.VIGIL_DEMO !== 'off' : !databaseUrl,
    role,
    maxBodyBytes: integer(env.VIGIL_MAX_BODY_BYTES, 16 * 1024 * 1024, 'VIGIL_MAX_BODY_BYTES'),
  };
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
