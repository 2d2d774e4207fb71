import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createAuth } from './auth/index.ts';
import { BUILT_IN_BOTS, outboxFeed, startBots, storeClient, type BotService } from './bots.ts';
import { loadConfig, type Config } from './config.ts';
import { loadRequiredBindings } from './bindings.ts';
import { loadDefinitions } from './definitions.ts';
import { startDemo } from './demo.ts';
import { externalClient, keepSubscribed, notifyRouter, onServer } from './external-bots.ts';
import { loadProfiles } from './profiles.ts';
import { createApp } from './http.ts';
import { registerAppClient } from './web-app.ts';
import { IngestGateway } from './ingest/gateway.ts';
import { IdentityResolver } from './ingest/identity.ts';
import { MappingStore } from './ingest/mappings.ts';
import { oauthDevices, startMqtt, type MqttTransport } from './ingest/mqtt.ts';
import { ingestRouter } from './ingest/routes.ts';
import { createQueueFactory, type QueueFactory } from './jobs/queue.ts';
import { AuditTrail } from './ops/audit.ts';
import { auditWriter } from './ops/audit-writer.ts';
import { createLogger, type Logger } from './ops/logger.ts';
import { createMetrics } from './ops/metrics.ts';
import { startAutovacuum } from './store/autovacuum.ts';
import { openDatabase, type Database } from './store/database.ts';
import { ChangeFeed } from './store/events.ts';
import { migrate } from './store/migrate.ts';
import { Repository } from './store/repository.ts';
import { subscriptionRoutes } from './subscriptions/routes.ts';
import { startSubscriptions, type SubscriptionService } from './subscriptions/service.ts';

export interface Vigil {
  config: Config;
  gateway: IngestGateway;
  mqtt: MqttTransport;
  queues: QueueFactory;
  subscriptions: SubscriptionService;
  /** Bot workers (roles all and worker). */
  bots?: BotService;
  db: Database;
  repo: Repository;
  audit: AuditTrail;
  feed: ChangeFeed;
  server: Server;
  logger: Logger;
  /** The port actually listened on (PORT=0 picks a free one). */
  port: number;
  stop(): Promise<void>;
}

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The FHIR model every part works from: the R4 definitions, their required bindings and Vigil's
 * profiles, loaded in one synchronous pass so that they share one parse of the R4 bundles.
 */
export function loadModel(): void {
  loadDefinitions();
  loadRequiredBindings();
  loadProfiles();
}

function startingUp(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(503, { 'content-type': 'application/fhir+json', 'retry-after': '1' });
  res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'Vigil is starting; retry shortly' }] }));
}

/** Wires the parts together and starts listening. */
export async function startVigil(config: Config = loadConfig()): Promise<Vigil> {
  const logger = createLogger(config.logLevel);
  loadModel();
  const db = await openDatabase(config);
  const applied = await migrate(db);
  if (applied.length) logger.info({ applied }, 'database migrated');
  // PostgreSQL vacuums and analyses its tables itself; the embedded engine has no autovacuum
  const stopAutovacuum = db.kind === 'pglite' ? startAutovacuum(db, (err) => logger.warn({ err }, 'autovacuum round failed')) : undefined;
  // listening comes first (PORT=0 must pick the port the base URL names); until every part is
  // wired, requests are refused as transient rather than left unanswered
  const server = createServer(startingUp);
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
  const audit = new AuditTrail(auditWriter(db, config.databaseUrl, config.baseUrl), config.baseUrl, logger, metrics.registry);
  const mappings = new MappingStore(db);
  await mappings.installBuiltins();
  const gateway = new IngestGateway(repo, mappings, new IdentityResolver(repo), metrics.registry);
  const routers = { '/ingest': ingestRouter(gateway, mappings, config.maxBodyBytes) };
  const auth = await createAuth(config, repo, logger, audit);
  await registerAppClient(db, config.baseUrl);
  const queues = createQueueFactory({ redisUrl: config.redisUrl, prefix: config.subscriptions.queuePrefix, lockMs: config.jobLockMs, onError: (err) => logger.error({ err }, 'job queue error') });
  // Bots run on the job queue workers (scheduled bots sweep on its schedules): on Vigil's own store,
  // fed by the outbox drain, or on an external FHIR server, fed by its notifications.
  const external = config.externalBots && { ...config.externalBots, notifyUrl: config.externalBots.notifyUrl ?? `${config.baseUrl}/bots/notify` };
  const botClient = external ? externalClient(external) : storeClient(repo);
  const host = config.role === 'api' || !config.botsEnabled ? undefined : startBots({
    fhir: botClient,
    queues,
    record: (event) => audit.recordEvent(external ? onServer(event, external.fhirUrl) : event),
    registry: metrics.registry,
    logger,
    concurrency: config.botConcurrency,
  }, BUILT_IN_BOTS);
  const bots = host && { host, changes: external ? undefined : outboxFeed(host, queues) };
  const subscriptions = await startSubscriptions({ config, repo, feed, queues, server, logger, audit: audit.security, registry: metrics.registry, feeds: bots?.changes ? [bots.changes] : [] });
  const fhirRoutes = (router: Parameters<typeof subscriptionRoutes>[0], wrap: Parameters<typeof subscriptionRoutes>[2]) =>
    subscriptionRoutes(router, { repo, baseUrl: config.baseUrl }, wrap, config.subscriptions.allowPrivateEndpoints, subscriptions.resend);
  server.off('request', startingUp);
  const hooks = host && external ? { '/bots/notify': notifyRouter(host, BUILT_IN_BOTS, external, config.maxBodyBytes) } : undefined;
  server.on('request', createApp({ config, fhir: { repo, baseUrl: config.baseUrl }, logger, version, metrics, routers, hooks, auth, fhirRoutes, audit }));
  const unsubscribe = host && external ? keepSubscribed(botClient, BUILT_IN_BOTS, external, logger) : undefined;
  // Last, so that devices are acknowledged only by a fully started Vigil.
  const mqtt = await startMqtt({ gateway, logger, url: config.mqttUrl, port: config.mqttPort, host: config.mqttHost, authenticate: oauthDevices(db, auth.verify), audit: audit.security, maxPayloadBytes: config.maxBodyBytes });
  logger.info({ port, fhirBase: `${config.baseUrl}/fhir/R4`, database: db.kind }, 'Vigil is listening');
  const demo = config.demo && config.role !== 'worker' ? await startDemo({ baseUrl: config.baseUrl, repo, logger }) : undefined;
  return {
    config, db, repo, audit, feed, server, logger, port, gateway, mqtt, queues, subscriptions, bots,
    async stop() {
      unsubscribe?.();
      await demo?.stop();
      auth.stop();
      await mqtt.stop();
      await subscriptions.stop();
      await queues.close({ timeoutMs: 2_000 });
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await audit.stop(); // the requests served last are recorded too
      await stopAutovacuum?.();
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
