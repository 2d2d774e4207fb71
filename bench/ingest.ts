import mqtt from 'mqtt';
import pg from 'pg';
import { CLIENT_ID, CLIENT_SECRET, fmt, http, percentiles, rawCopyRate, recreateDatabase, renewToken, startServer } from './support.ts';

/**
 * `npm run bench -- ingest [--devices N] [--seconds N] [--batch N] [--mqtt-seconds N]`: device
 * readings through the `vigil-generic` mapping on PostgreSQL, over HTTP batches and MQTT QoS 1.
 * Reports readings/s committed and searchable, device-to-commit latency, and a raw COPY of the
 * resulting Observation rows in the same run as the ceiling.
 */
const MQTT_PORT = 18_830;

const KINDS = [
  { type: 'heart-rate', unit: '/min', base: 72 },
  { type: 'spo2', unit: '%', base: 96 },
  { type: 'respiratory-rate', unit: '/min', base: 16 },
  { type: 'body-temperature', unit: 'Cel', base: 36.8 },
];

export async function main(args: string[]): Promise<void> {
  const opt = (name: string, fallback: number): number => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const devices = opt('devices', 1000);
  const seconds = opt('seconds', 60);
  const batch = opt('batch', 500);
  const mqttSeconds = opt('mqtt-seconds', 30);
  const url = await recreateDatabase('vigil_bench_ingest');
  // The embedded broker acknowledges a publish only once its readings are committed, so the
  // device-side PUBACK timing is Vigil's own (an external broker would acknowledge at once).
  const server = await startServer(url, 8192, { MQTT_PORT: String(MQTT_PORT) });
  const fhir = `${server.base}/fhir/R4`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    console.log(`bench ingest: ${fmt(devices)} devices, HTTP batches of ${batch} for ${seconds} s, MQTT QoS 1 for ${mqttSeconds} s`);
    const tx = {
      resourceType: 'Bundle', type: 'transaction',
      entry: Array.from({ length: devices }, (_, d) => [
        { fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(d).padStart(12, '0')}`, resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Device', identifier: [{ system: 'urn:bench', value: `dev-${d}` }], patient: { reference: `urn:uuid:00000000-0000-4000-8000-${String(d).padStart(12, '0')}` } }, request: { method: 'POST', url: 'Device' } },
      ]).flat(),
    };
    const enrolled = await http('POST', fhir, JSON.stringify(tx));
    if (enrolled.status !== 200) throw new Error(`enrolment failed: ${enrolled.status} ${enrolled.body.slice(0, 300)}`);

    // Each reading gets a distinct second so that every one is a new Observation.
    let sequence = 0;
    const start = Date.UTC(2026, 0, 1);
    const reading = () => {
      const n = sequence++;
      const kind = KINDS[n % KINDS.length];
      return { deviceId: `dev-${n % devices}`, timestamp: new Date(start + n * 1000).toISOString(), type: kind.type, value: kind.base + (n % 7) - 3, unit: kind.unit };
    };

    // HTTP: batches of `batch`, a few in flight, for `seconds`.
    await renewToken(server.base);
    const latencies: number[] = [];
    let httpReadings = 0;
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (performance.now() < until) {
        const messages = Array.from({ length: batch }, reading);
        const sent = performance.now();
        const res = await http('POST', `${server.base}/ingest/vigil-generic`, JSON.stringify(messages));
        if (res.status !== 200) throw new Error(`ingest: ${res.status} ${res.body.slice(0, 300)}`);
        const body = JSON.parse(res.body) as { accepted: number };
        if (body.accepted !== batch) throw new Error(`ingest: only ${body.accepted} of ${batch} accepted`);
        latencies.push(performance.now() - sent);
        httpReadings += batch;
      }
    }));
    const httpRate = httpReadings / ((performance.now() - t0) / 1000);

    // MQTT QoS 1: the PUBACK comes after commit, so acknowledged = committed.
    const broker = await mqtt.connectAsync(`mqtt://127.0.0.1:${MQTT_PORT}`, { clientId: `bench-${process.pid}`, username: CLIENT_ID, password: CLIENT_SECRET });
    let mqttReadings = 0;
    const m0 = performance.now();
    const mqttUntil = m0 + mqttSeconds * 1000;
    const mqttLatencies: number[] = [];
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (performance.now() < mqttUntil) {
        const messages = Array.from({ length: 50 }, reading);
        const sent = performance.now();
        await broker.publishAsync('vigil/ingest/vigil-generic', JSON.stringify(messages), { qos: 1 });
        mqttLatencies.push(performance.now() - sent);
        mqttReadings += messages.length;
      }
    }));
    const mqttRate = mqttReadings / ((performance.now() - m0) / 1000);
    await broker.endAsync();

    // Searchable: every acknowledged reading is an Observation.
    await renewToken(server.base);
    const count = await http('GET', `${fhir}/Observation?_summary=count&_total=accurate`);
    const stored = (JSON.parse(count.body) as { total: number }).total;

    // Ceiling: the resulting Observation rows copied raw.
    const { rows: copied, perSecond: copyRate } = await rawCopyRate(client);

    const l = percentiles(latencies);
    const m = percentiles(mqttLatencies);
    console.log('');
    console.log(`raw PostgreSQL COPY (same Observation rows, ${fmt(copied)}): ${fmt(copyRate)} rows/s   <- ceiling`);
    console.log(`HTTP batches of ${batch}, 4 in flight:  ${fmt(httpRate)} readings/s committed (${fmt((httpRate / copyRate) * 100, 1)}% of COPY); batch round trip p50 ${fmt(l.p50)} ms p99 ${fmt(l.p99)} ms`);
    // --mqtt-seconds 0: HTTP alone (e.g. to profile it)
    if (mqttLatencies.length) console.log(`MQTT QoS 1, 50 per publish, 16 in flight: ${fmt(mqttRate)} readings/s committed; publish→PUBACK p50 ${fmt(m.p50)} ms p99 ${fmt(m.p99)} ms`);
    console.log(`stored and searchable: ${fmt(stored)} Observations for ${fmt(httpReadings + mqttReadings)} acknowledged readings`);
  } finally {
    await client.end();
    await server.stop();
  }
}
