import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { loadConfig, type Config } from './config.ts';
import { loadRequiredBindings } from './bindings.ts';
import { loadDefinitions } from './definitions.ts';
import { loadProfiles } from './profiles.ts';
import { createApp } from './http.ts';
import { IngestGateway } from './ingest/gateway.ts';
import { IdentityResolver } from './ingest/identity.ts';
import { MappingStore } from './ingest/mappings.ts';
import { ingestRouter } from './ingest/routes.ts';
import { createLogger, type Logger } from './ops/logger.ts';
import { createMetrics } from './ops/metrics.ts';
import { openDatabase, type Database } from './store/database.ts';
import { ChangeFeed } from './store/events.ts';
import { migrate } from './store/migrate.ts';
import { Repository } from './store/repository.ts';

export interface Vigil {
  config: Config;
  gateway: IngestGateway;
  db: Database;
  repo: Repository;
  feed: ChangeFeed;
  server: Server;
  logger: Logger;
  /** The port actually listened on (PORT=0 picks a free one). */
  port: number;
  stop(): Promise<void>;
}

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Wires the parts together and starts listening. */
export async function startVigil(config: Config = loadConfig()): Promise<Vigil> {
  const logger = createLogger(config.logLevel);
  loadDefinitions();
  loadRequiredBindings();
  loadProfiles();
  const db = await openDatabase(config);
  const applied = await migrate(db);
  if (applied.length) logger.info({ applied }, 'database migrated');
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  // PORT=0 (tests) listens on a free port; the default base URL follows it.
  if (config.port === 0) config.baseUrl = config.baseUrl.replace(/:0$/, `:${port}`);
  const feed = new ChangeFeed();
  const repo = new Repository(db, config.baseUrl, feed);
  const metrics = createMetrics(db);
  const mappings = new MappingStore(db);
  await mappings.installBuiltins();
  const gateway = new IngestGateway(repo, mappings, new IdentityResolver(repo, feed), metrics.registry);
  const routers = { '/ingest': ingestRouter(gateway, mappings, config.maxBodyBytes) };
  server.on('request', createApp({ config, fhir: { repo, baseUrl: config.baseUrl }, logger, version, metrics, routers }));
  logger.info({ port, fhirBase: `${config.baseUrl}/fhir/R4`, database: db.kind }, 'Vigil is listening');
  return {
    config, db, repo, feed, server, logger, port, gateway,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await db.close();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const vigil = await startVigil();
  const shutdown = (signal: string): void => {
    vigil.logger.info({ signal }, 'shutting down');
    vigil.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
