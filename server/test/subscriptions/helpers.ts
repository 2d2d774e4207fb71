import { createServer, type IncomingMessage, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { request } from '../support.ts';

export interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

/** A real HTTP receiver; `status` decides each answer (default 200). */
export interface Receiver {
  url: string;
  received: Received[];
  status: (n: number) => number;
  close(): Promise<void>;
}

export async function startReceiver(status: (n: number) => number = () => 200): Promise<Receiver> {
  const received: Received[] = [];
  const receiver = { received, status } as Receiver;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() });
      res.statusCode = receiver.status(received.length);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  receiver.url = `http://127.0.0.1:${address.port}/hook`;
  receiver.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

/** Polls until probe answers; generous, because CI runs two suites at once on two cores. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Creates a subscription (with the default system token unless `headers` say otherwise) and waits for the server to activate it (or set it to error). */
export async function subscribe(fhir: string, body: Record<string, unknown>, until: 'active' | 'error' = 'active', headers: Record<string, string> = {}): Promise<any> {
  const created = await request('POST', `${fhir}/Subscription`, { resourceType: 'Subscription', status: 'requested', reason: 'test', ...body }, headers);
  if (created.status !== 201) throw new Error(`create failed: ${created.status} ${JSON.stringify(created.body)}`);
  return waitFor(`Subscription ${until}`, async () => {
    const read = await request('GET', `${fhir}/Subscription/${created.body.id}`, undefined, headers);
    return read.body.status === until ? read.body : undefined;
  });
}

/** A websocket client that keeps every message it receives. */
export async function connect(url: string): Promise<{ ws: WebSocket; messages: string[] }> {
  const ws = new WebSocket(url);
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(data.toString()));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return { ws, messages };
}

export const observation = (patient: string, code = '8867-4', value = 80) => ({
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code }] },
  subject: { reference: patient },
  effectiveDateTime: '2025-01-01T10:00:00Z',
  valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});

export const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
export const VITAL = 'https://vigil.health/fhir/SubscriptionTopic/new-vital-sign';

/** A topic-based (Backport IG) rest-hook subscription with these filters, notified id-only. */
export const backportSubscription = (topic: string, endpoint: string, filters: string[], payload = 'application/fhir+json') => ({
  meta: { profile: [`${BACKPORT}backport-subscription`] },
  criteria: topic,
  _criteria: { extension: filters.map((valueString) => ({ url: `${BACKPORT}backport-filter-criteria`, valueString })) },
  channel: {
    type: 'rest-hook',
    endpoint,
    payload,
    _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'id-only' }] },
  },
});

/** A topic-based subscription to one patient's new vital signs, notified id-only. */
export const topicSubscription = (endpoint: string, patient: string, payload?: string) =>
  backportSubscription(VITAL, endpoint, [`Observation?patient=${patient}`], payload);

/** The focus references of the event notifications a receiver got (handshakes and heartbeats carry none). */
export const notifiedFocus = (receiver: Receiver): string[] =>
  receiver.received.flatMap((r) => {
    const bundle = JSON.parse(r.body);
    return bundle.resourceType === 'Bundle' ? bundle.entry.slice(1).map((e: { fullUrl: string }) => e.fullUrl.split('/').slice(-2).join('/')) : [];
  });
