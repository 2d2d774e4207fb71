import { createServer, type Server } from 'node:net';
import { Aedes, type AuthenticateError, type AuthErrorCode, type Client } from 'aedes';
import type { Logger } from '../ops/logger.ts';
import { mappingOf, type MqttIngest } from './mqtt-ingest.ts';

export type Authenticate = (username: string, password: string) => Promise<boolean>;

export interface EmbeddedBrokerOptions {
  ingest: MqttIngest;
  logger: Logger;
  port: number;
  host: string;
  authenticate?: Authenticate;
}

export interface EmbeddedBroker {
  port: number;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * An in-process aedes broker. Ingest publishes are handled in `authorizePublish`, which aedes runs
 * before it sends the PUBACK (QoS 1) or PUBREC (QoS 2): calling back only after the gateway has
 * committed means an acknowledged reading is stored or dead-lettered. A gateway failure closes
 * the connection without acknowledging, so the device re-sends. Undefined when the port is taken.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker | undefined> {
  const { ingest, logger, port, host, authenticate } = options;
  // Without an authentication hook only local processes can reach the broker, so anonymous is safe.
  if (!authenticate && !LOOPBACK.has(host)) {
    throw new Error(`The embedded MQTT broker allows anonymous clients only on a loopback address, not ${host}`);
  }
  const broker = await Aedes.createBroker();
  if (authenticate) broker.authenticate = authenticator(authenticate, logger);
  const queues = new WeakMap<Client, Promise<void>>();
  let closing = false;

  broker.authorizePublish = (client, packet, callback) => {
    if (packet.topic.startsWith('$SYS/')) return callback(new Error('$SYS/ topics are reserved'));
    const mapping = mappingOf(packet.topic);
    if (mapping === undefined) return callback(null);
    if (closing) return callback(new Error('Vigil is shutting down'));
    // Readings are health data: never kept as retained messages in broker memory.
    packet.retain = false;
    const run = () => ingest.handle(mapping, packet.payload);
    // One client's publishes are ingested in order, so its PUBACKs go out in order (MQTT 4.6).
    const previous = client ? queues.get(client) : undefined;
    const work = previous ? previous.then(run, run) : run();
    if (client) queues.set(client, work.catch(() => undefined));
    work.then(
      () => callback(null),
      (err: unknown) => {
        logger.error({ err, mapping, clientId: client?.id }, 'MQTT ingest failed; closing the connection unacknowledged so the device re-sends');
        callback(err as Error);
      },
    );
  };
  // Readings go to Vigil only, not to whichever other client subscribes to the ingest topics.
  broker.authorizeForward = (_client, packet) => (mappingOf(packet.topic) === undefined ? packet : null);

  const server = createServer(broker.handle);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await closeBroker(broker);
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EADDRINUSE' && code !== 'EACCES') throw err;
    logger.warn(
      { port, host, code },
      `MQTT port ${port} on ${host} is unavailable (${code}; another broker?), so the embedded MQTT broker is off. ` +
        `Set MQTT_URL=mqtt://${host}:${port} to ingest from the broker already there, or MQTT_PORT to a free port (0 disables MQTT).`,
    );
    return undefined;
  }
  server.on('error', (err) => logger.error({ err }, 'embedded MQTT broker error'));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    async close() {
      closing = true;
      await ingest.idle();
      await closeBroker(broker);
      await closeServer(server);
    },
  };
}

function authenticator(authenticate: Authenticate, logger: Logger): Aedes['authenticate'] {
  const refuse = (message: string, returnCode: number) => Object.assign(new Error(message), { returnCode: returnCode as AuthErrorCode }) as AuthenticateError;
  return (_client, username, password, done) => {
    authenticate(username ?? '', password?.toString('utf8') ?? '').then(
      (ok) => (ok ? done(null, true) : done(refuse('Bad username or password', 4), false)),
      (err: unknown) => {
        logger.error({ err }, 'MQTT authentication hook failed');
        done(refuse('Server unavailable', 3), false);
      },
    );
  };
}

const closeBroker = (broker: Aedes) => new Promise<void>((resolve) => broker.close(() => resolve()));
const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
