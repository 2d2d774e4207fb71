import type { AccessPolicy } from '../auth/access-policy.ts';
import type { Logger } from '../ops/logger.ts';
import type { IngestGateway } from './gateway.ts';

/** Devices publish to `vigil/ingest/{mapping}`; Vigil subscribes with the single-level wildcard. */
export const INGEST_TOPIC = 'vigil/ingest/+';
const PREFIX = 'vigil/ingest/';

/** Unknown mapping names remembered for log-once; bounded, since topics are chosen by clients. */
const MAX_REMEMBERED = 1000;

/** The topic a device publishes to for the given mapping. */
export const ingestTopic = (mapping: string): string => `${PREFIX}${mapping}`;

/** The mapping an ingest topic names; undefined for any other topic. */
export function mappingOf(topic: string): string | undefined {
  if (!topic.startsWith(PREFIX)) return undefined;
  const name = topic.slice(PREFIX.length);
  return name && !name.includes('/') ? name : undefined;
}

/**
 * One MQTT publish to the gateway, shared by the embedded and external brokers. `handle` settles
 * only once the readings are committed or dead-lettered, so acknowledging after it is safe; it
 * rejects only when the gateway itself fails (database down), and then must not be acknowledged.
 * A device cannot be told why a publish failed, so nothing it sends is dropped: payloads over the
 * size limit, and messages for a mapping that does not exist (yet), are dead-lettered too.
 */
export class MqttIngest {
  readonly #gateway: Pick<IngestGateway, 'ingest' | 'reject'>;
  readonly #logger: Logger;
  readonly #maxPayloadBytes: number;
  readonly #unknown = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();

  constructor(gateway: Pick<IngestGateway, 'ingest' | 'reject'>, logger: Logger, maxPayloadBytes: number) {
    this.#gateway = gateway;
    this.#logger = logger;
    this.#maxPayloadBytes = maxPayloadBytes;
  }

  /** `access`: the publishing device's rights (embedded broker); an external broker authorises its own clients. */
  handle(mapping: string, payload: Buffer | string, access?: AccessPolicy): Promise<void> {
    const work = this.#ingest(mapping, payload, access);
    this.#inFlight.add(work);
    const forget = () => this.#inFlight.delete(work);
    work.then(forget, forget);
    return work;
  }

  /** Resolves when every publish being handled has settled (before the database closes). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }

  async #ingest(mapping: string, payload: Buffer | string, access: AccessPolicy | undefined): Promise<void> {
    const bytes = Buffer.byteLength(payload);
    if (bytes > this.#maxPayloadBytes) {
      // Never parsed, and not kept (HTTP answers 413 and keeps nothing): the dead letter says what came.
      const reason = `The message is ${bytes} bytes, more than the limit of ${this.#maxPayloadBytes} (VIGIL_MAX_BODY_BYTES)`;
      await this.#gateway.reject(mapping, [`(not kept: ${bytes} bytes)`], reason);
      return;
    }
    const text = payload.toString();
    let messages: unknown[];
    try {
      const body: unknown = JSON.parse(text);
      messages = Array.isArray(body) ? body : [body];
    } catch {
      // No template matches a bare string, so the gateway dead-letters it verbatim, save NUL,
      // which PostgreSQL text cannot hold: a payload that cannot be stored would be redelivered forever.
      messages = [text.replaceAll('\0', '\uFFFD')];
    }
    if (messages.length === 0) return;
    const results = await this.#gateway.ingest(mapping, messages, access);
    if (!results) {
      // Kept under the name as given, so that they can be replayed once the mapping is created.
      await this.#gateway.reject(mapping, messages, `Unknown mapping "${mapping}"`);
      if (!this.#unknown.has(mapping) && this.#unknown.size < MAX_REMEMBERED) {
        this.#unknown.add(mapping);
        this.#logger.warn({ mapping, topic: ingestTopic(mapping) }, 'MQTT messages for an unknown mapping are dead-lettered');
      }
      return;
    }
    const rejected = results.filter((r) => r.status === 'rejected').length;
    if (rejected) this.#logger.debug({ mapping, rejected, received: results.length }, 'MQTT messages dead-lettered');
    const forbidden = results.filter((r) => r.status === 'forbidden').length;
    if (forbidden) this.#logger.warn({ mapping, clientId: access?.clientId, forbidden, received: results.length }, 'MQTT messages dropped: not the client\'s to write');
  }
}
