import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type AuthenticateError, type AuthErrorCode, type Client } from 'aedes';
import type { Logger } from '../ops/logger.ts';
import { connectionEntity, type SecurityEvent } from '../ops/security-audit.ts';
import type { Authenticate, DeviceIdentity } from './mqtt-auth.ts';
import { mappingOf, type MqttIngest } from './mqtt-ingest.ts';
import { packetSizeLimit } from './mqtt-packet-size.ts';

export interface EmbeddedBrokerOptions {
  ingest: MqttIngest;
  logger: Logger;
  port: number;
  host: string;
  /** Every client authenticates: the embedded broker takes no anonymous connections. */
  authenticate: Authenticate;
  /** Records device sessions: connections, refused credentials, disconnects. */
  audit: (event: SecurityEvent) => void;
  /** The ingest payload limit; packets are allowed PACKET_HEADROOM more, so that a payload just over it is dead-lettered. */
  maxPayloadBytes: number;
}

export interface EmbeddedBroker {
  port: number;
  close(): Promise<void>;
}

/** MQTT 3.1.1 CONNACK return code 5. */
const NOT_AUTHORIZED = 5;
/** MQTT 3.1.1 CONNACK return code 3. */
const SERVER_UNAVAILABLE = 3;
/** Room for a PUBLISH's topic (at most 64 KiB) and headers beside its payload. */
const PACKET_HEADROOM = 64 * 1024 + 64;

/**
 * An in-process aedes broker that is Vigil's device gateway and nothing else: clients authenticate
 * with OAuth credentials, may publish only to `vigil/ingest/{mapping}`, and subscribe to nothing.
 * Ingest publishes are handled in `authorizePublish`, which aedes runs before it sends the PUBACK
 * (QoS 1) or PUBREC (QoS 2): calling back only after the gateway has committed means an
 * acknowledged reading is stored, dead-lettered or refused as not the client's to write. A
 * gateway failure, or credentials that expired since CONNECT, close the connection without
 * acknowledging, so the device re-sends. A packet larger than the payload limit allows closes the
 * connection as soon as its header announces it, before it is buffered. The audit trail records
 * each session (the OAuth client, the MQTT client id, the address) and each refused CONNECT, never
 * the password. Undefined when the port is taken.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker | undefined> {
  const { ingest, logger, port, host, authenticate, audit, maxPayloadBytes } = options;
  const broker = await Aedes.createBroker();
  const devices = new WeakMap<Client, DeviceIdentity>();
  const acks = new WeakMap<Client, Promise<void>>();
  let closing = false;
  const session = (subtype: string, client: Client, clientId: string | undefined, failure?: string) => audit({
    kind: 'mqtt',
    subtype,
    action: 'E',
    failure,
    clientId,
    address: (client.conn as Socket).remoteAddress, // kept by the socket once read, so still there at disconnect
    entity: [connectionEntity(client.id.slice(0, 200))],
  });

  broker.authenticate = (client, username, password, done) => {
    const refuse = (message: string, returnCode: number) => done(Object.assign(new Error(message), { returnCode: returnCode as AuthErrorCode }) as AuthenticateError, false);
    authenticate(username ?? '', password?.toString('utf8') ?? '').then(
      (device) => {
        if (!device) {
          logger.info({ clientId: client.id, username }, 'MQTT connection refused: not authorized');
          // the user name is the client id the device claims (or anything, beside a token): kept short
          session('connect', client, username ? username.slice(0, 64) : undefined, 'not authorized');
          return refuse('Not authorized', NOT_AUTHORIZED);
        }
        devices.set(client, device);
        done(null, true);
      },
      (err: unknown) => {
        logger.error({ err }, 'MQTT authentication failed');
        session('connect', client, undefined, 'server unavailable');
        refuse('Server unavailable', SERVER_UNAVAILABLE);
      },
    );
  };
  // once registered (a CONNECT that was refused never is), and when it goes, for whatever reason
  broker.on('client', (client) => session('connect', client, devices.get(client)?.clientId));
  broker.on('clientDisconnect', (client) => session('disconnect', client, devices.get(client)?.clientId));

  broker.authorizePublish = (client, packet, callback) => {
    const mapping = mappingOf(packet.topic);
    const device = client ? devices.get(client) : undefined;
    // Also refuses $SYS/ and the broker's own will messages: nothing but readings goes through here.
    if (mapping === undefined || !client || !device) return callback(new Error(`Only vigil/ingest/{mapping} takes publishes, not ${packet.topic}`));
    if (closing) return callback(new Error('Vigil is shutting down'));
    // Readings are health data: never kept as retained messages in broker memory.
    packet.retain = false;
    // Publishes are ingested as they come, several at once (their writes share commits), but
    // acknowledged in the order they were received, as MQTT 4.6 requires of PUBACKs.
    const outcome = device.policy().then((policy) => ingest.handle(mapping, packet.payload, policy)).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    const acked = (acks.get(client) ?? Promise.resolve())
      .then(() => outcome)
      .then((err) => {
        if (!err) return callback(null);
        logger.warn({ err, mapping, clientId: client.id }, 'MQTT publish not ingested; closing the connection unacknowledged so the device re-sends');
        callback(err);
      });
    acks.set(client, acked);
  };
  broker.authorizeSubscribe = (_client, _subscription, callback) => callback(null, null);
  broker.authorizeForward = () => null;

  const maxPacketBytes = maxPayloadBytes + PACKET_HEADROOM;
  const server = createServer((socket) => {
    const client = broker.handle(socket);
    const tooLarge = packetSizeLimit(maxPacketBytes);
    // aedes reads on 'readable', so this listener sees each chunk as aedes takes it, and changes no flow.
    socket.on('data', (chunk: Buffer) => {
      const bytes = tooLarge(chunk);
      if (bytes === undefined) return;
      logger.warn({ clientId: client.id, bytes, limit: maxPacketBytes }, 'MQTT packet larger than the limit; closing the connection');
      socket.destroy();
    });
  });
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

const closeBroker = (broker: Aedes) => new Promise<void>((resolve) => broker.close(() => resolve()));
const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
