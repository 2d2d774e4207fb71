import { connect } from 'mqtt';
import type { Logger } from '../ops/logger.ts';
import { INGEST_TOPIC, mappingOf, type MqttIngest } from './mqtt-ingest.ts';

/** The persistent session's name; replicas each need their own (`?clientId=` in MQTT_URL). */
const DEFAULT_CLIENT_ID = 'vigil-ingest';

export interface ExternalBroker {
  close(): Promise<void>;
}

/**
 * Subscribes to the ingest topics on another broker with QoS 1 in a persistent session
 * (clean: false, fixed client id, MQTT 3.1.1 so the session never expires). mqtt.js sends the
 * PUBACK only when `handleMessage` calls back, which happens after the gateway committed; if
 * Vigil dies first, or the gateway fails, the broker redelivers the message on the next connect.
 * Resolves once subscribed, or after the first failure to connect (it keeps retrying then).
 */
export async function connectExternalBroker(url: string, ingest: MqttIngest, logger: Logger): Promise<ExternalBroker> {
  // Credentials may be in the URL: log the host only.
  const broker = new URL(url).host;
  const client = connect(url, { clientId: DEFAULT_CLIENT_ID, clean: false, protocolVersion: 4, reconnectPeriod: 2000, connectTimeout: 5000 });
  let closing = false;

  client.handleMessage = (packet, done) => {
    const mapping = mappingOf(packet.topic);
    if (mapping === undefined) return done();
    // Left unacknowledged: the session keeps it for the next start.
    if (closing) return done(new Error('Vigil is shutting down'));
    ingest.handle(mapping, packet.payload).then(
      () => done(),
      (err: unknown) => {
        logger.error({ err, mapping }, 'MQTT ingest failed; reconnecting so that the broker redelivers');
        done(err as Error);
        // A broker redelivers unacknowledged QoS 1 messages only on a new connection.
        client.stream.destroy();
      },
    );
  };

  // One warning per outage, not one per reconnect attempt.
  let problem: string | undefined;
  const warn = (message: string) => {
    if (problem !== undefined) return;
    problem = message;
    logger.warn({ broker }, `MQTT broker: ${message}`);
  };
  client.on('error', (err) => warn(`${err.message}; retrying`));
  client.on('offline', () => warn('unreachable; retrying'));

  await new Promise<void>((resolve) => {
    client.on('connect', () => {
      client.subscribe(INGEST_TOPIC, { qos: 1 }, (err) => {
        if (err) {
          warn(`refused the subscription to ${INGEST_TOPIC} (${err.message}): no readings will arrive until Vigil reconnects`);
        } else {
          logger.info({ broker, clientId: client.options.clientId }, `MQTT ingest subscribed to ${INGEST_TOPIC}`);
          problem = undefined;
        }
        resolve();
      });
    });
    client.once('offline', () => resolve());
    client.once('error', () => resolve());
  });

  return {
    async close() {
      closing = true;
      await ingest.idle();
      await client.endAsync();
    },
  };
}
