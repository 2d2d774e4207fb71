import { randomUUID } from 'node:crypto';
import { connectAsync } from 'mqtt';
import { ingestTopic } from '../ingest/mqtt-ingest.ts';
import type { GenericReading } from './generator.ts';
import type { ClientCredentials, AuthHeaders } from './token.ts';

const MAPPING = 'vigil-generic';

/** Delivers a batch; resolves with how many messages Vigil dead-lettered, when it says (HTTP). */
export interface Sender {
  send(batch: GenericReading[]): Promise<number | undefined>;
  close(): Promise<void>;
}

/** `POST /ingest/vigil-generic` with the batch as a JSON array; Vigil answers once it is stored. */
export function httpSender(baseUrl: string, auth: AuthHeaders): Sender {
  const url = `${baseUrl.replace(/\/+$/, '')}/ingest/${MAPPING}`;
  return {
    async send(batch) {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(await auth()) }, body: JSON.stringify(batch) });
      if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${(await res.text()).slice(0, 200)}`);
      return (await res.json() as { rejected: number }).rejected;
    },
    async close() {},
  };
}

/** QoS 1 publishes to `vigil/ingest/vigil-generic`; resolves on the PUBACK. Vigil's brokers take the OAuth client as MQTT credentials. */
export async function mqttSender(brokerUrl: string, credentials: ClientCredentials | undefined, log: (line: string) => void): Promise<Sender> {
  const options = {
    clientId: `vigil-simulator-${randomUUID().slice(0, 8)}`,
    clean: true,
    reconnectPeriod: 1000,
    ...(credentials ? { username: credentials.clientId, password: credentials.clientSecret } : {}),
  };
  // No retries for the first connection: a wrong URL should fail the start, not hang it.
  const client = await connectAsync(brokerUrl, options, false);
  // Later outages: mqtt.js reconnects and holds the publishes meanwhile.
  client.on('error', (err) => log(`MQTT: ${err.message}`));
  return {
    async send(batch) {
      await client.publishAsync(ingestTopic(MAPPING), JSON.stringify(batch), { qos: 1 });
      return undefined;
    },
    close: () => client.endAsync(),
  };
}
