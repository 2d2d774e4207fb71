import type { Logger } from '../ops/logger.ts';
import type { SecurityEvent } from '../ops/security-audit.ts';
import type { IngestGateway } from './gateway.ts';
import type { Authenticate } from './mqtt-auth.ts';
import { startEmbeddedBroker } from './mqtt-embedded.ts';
import { connectExternalBroker } from './mqtt-external.ts';
import { MqttIngest } from './mqtt-ingest.ts';

export { oauthDevices, type Authenticate, type DeviceIdentity } from './mqtt-auth.ts';
export { ingestTopic } from './mqtt-ingest.ts';

export interface MqttOptions {
  gateway: Pick<IngestGateway, 'ingest' | 'reject'>;
  logger: Logger;
  /** Another broker (`mqtt://user:secret@host:1883?clientId=…`); when set, no embedded broker runs. */
  url?: string;
  /** The embedded broker's port; 0 disables it. */
  port: number;
  /** The embedded broker's address (default 127.0.0.1). */
  host?: string;
  /**
   * Checks each CONNECT on the embedded broker (`oauthDevices`: username = OAuth client id,
   * password = its secret or an access token); nobody connects without. An external broker
   * authenticates devices itself.
   */
  authenticate: Authenticate;
  /** Records the embedded broker's device sessions (connections, refused credentials, disconnects). */
  audit: (event: SecurityEvent) => void;
  /** Larger payloads are dead-lettered unread: HTTP's limit, `config.maxBodyBytes` (VIGIL_MAX_BODY_BYTES). */
  maxPayloadBytes: number;
}

export interface MqttTransport {
  /** Where readings arrive: another broker, the embedded one, or nowhere (disabled or port taken). */
  readonly mode: 'external' | 'embedded' | 'off';
  /** The port the embedded broker listens on. */
  readonly port?: number;
  /** Stops taking publishes and waits for those being ingested. Idempotent. */
  stop(): Promise<void>;
}

/** Device ingest over MQTT: topic `vigil/ingest/{mapping}`, payload one JSON message or an array. */
export async function startMqtt(options: MqttOptions): Promise<MqttTransport> {
  const { maxPayloadBytes } = options;
  const ingest = new MqttIngest(options.gateway, options.logger, maxPayloadBytes);
  if (options.url) {
    const external = await connectExternalBroker(options.url, ingest, options.logger);
    return { mode: 'external', stop: once(() => external.close()) };
  }
  const embedded = options.port === 0
    ? undefined
    : await startEmbeddedBroker({ ingest, logger: options.logger, port: options.port, host: options.host ?? '127.0.0.1', authenticate: options.authenticate, audit: options.audit, maxPayloadBytes });
  if (!embedded) return { mode: 'off', stop: async () => {} };
  return { mode: 'embedded', port: embedded.port, stop: once(() => embedded.close()) };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}
