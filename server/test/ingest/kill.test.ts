import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectAsync, type MqttClient } from 'mqtt';
import pg from 'pg';
import { bootstrapEnv, clientCredentialsToken, freePort, freshPostgresDatabase, spawnVigil, type VigilProcess } from '../support.ts';

/**
 * Issue 4's exactly-once promise under a crash: Vigil (PostgreSQL) takes readings over HTTP and
 * MQTT QoS 1, is SIGKILLed mid-stream and restarted on the same database; the clients re-send
 * whatever was not acknowledged (HTTP: the failed batch; MQTT: mqtt.js re-sends unacknowledged
 * publishes on reconnect). Every acknowledged reading must then be stored exactly once.
 */

const DEVICES = 20;
const HTTP_BATCH = 50;
const HTTP_CLIENTS = 3;
const MQTT_BATCH = 10;
const MQTT_IN_FLIGHT = 8;
const START = Date.now() - 24 * 3600_000;

interface Reading {
  deviceId: string;
  timestamp: string;
  type: 'heart-rate';
  value: number;
  unit: '/min';
}

let sequence = 0;
/** Each reading its own second on its own device: its own Observation. */
function next(): Reading {
  const n = sequence++;
  return { deviceId: `kill-dev-${n % DEVICES}`, timestamp: new Date(START + n * 1000).toISOString(), type: 'heart-rate', value: 40 + (n % 150), unit: '/min' };
}

describe('ingest survives SIGKILL mid-stream: every acknowledged reading stored exactly once (postgres)', () => {
  const credentials = bootstrapEnv();
  let drop: () => Promise<void>;
  let env: Record<string, string>;
  let vigil: VigilProcess | undefined;
  let base: string;

  before(async () => {
    const db = await freshPostgresDatabase();
    drop = db.drop;
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // the API tier: bots and subscription matching would write Observations of their own
    env = { ...credentials, DATABASE_URL: db.url, PORT: String(port), VIGIL_BASE_URL: base, MQTT_PORT: String(await freePort()), VIGIL_ROLE: 'api' };
    vigil = await spawnVigil(env);
  });
  after(async () => {
    await vigil?.stop();
    await drop?.();
  });

  it('kills Vigil while HTTP batches and MQTT publishes are in flight, restarts it, and loses or doubles nothing', { timeout: 600_000 }, async (t) => {
    const { VIGIL_BOOTSTRAP_CLIENT_ID: clientId, VIGIL_BOOTSTRAP_CLIENT_SECRET: clientSecret } = credentials;
    // backend-service tokens live 5 minutes and this test can outlast one on a loaded machine:
    // clients fetch a fresh token every minute, as a device gateway would
    let issued = { token: await clientCredentialsToken(base, clientId, clientSecret), at: Date.now() };
    const bearer = async (): Promise<string> => {
      if (Date.now() - issued.at > 60_000) issued = { token: await clientCredentialsToken(base, clientId, clientSecret), at: Date.now() };
      return `Bearer ${issued.token}`;
    };
    const enrol = {
      resourceType: 'Bundle', type: 'transaction',
      entry: Array.from({ length: DEVICES }, (_, d) => [
        { fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(d).padStart(12, '0')}`, resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } },
        {
          resource: { resourceType: 'Device', identifier: [{ system: 'urn:test', value: `kill-dev-${d}` }], patient: { reference: `urn:uuid:00000000-0000-4000-8000-${String(d).padStart(12, '0')}` } },
          request: { method: 'POST', url: 'Device' },
        },
      ]).flat(),
    };
    const enrolled = await fetch(`${base}/fhir/R4`, { method: 'POST', headers: { 'content-type': 'application/fhir+json', authorization: await bearer() }, body: JSON.stringify(enrol) });
    assert.equal(enrolled.status, 200);

    const acknowledged = new Map<string, Reading>();
    const key = (r: Reading) => `${r.deviceId}|${r.timestamp}`;
    let streaming = true;
    /** Set when the test gives up: clients stop re-sending. */
    let abandoned = false;
    let httpInFlight = 0;
    let httpFailures = 0;

    // HTTP: a batch is re-sent until Vigil answers it; only its `ok` messages count as acknowledged.
    const http = Array.from({ length: HTTP_CLIENTS }, async () => {
      while (streaming) {
        const batch = Array.from({ length: HTTP_BATCH }, next);
        while (!abandoned) {
          httpInFlight++;
          try {
            const res = await fetch(`${base}/ingest/vigil-generic`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: await bearer() }, body: JSON.stringify(batch) });
            if (res.status === 503) throw new Error('Vigil is starting'); // transient: re-sent, as a gateway would
            assert.equal(res.status, 200, await res.clone().text());
            const body = (await res.json()) as { results: { status: string }[] };
            body.results.forEach((r, i) => {
              assert.equal(r.status, 'ok');
              acknowledged.set(key(batch[i]), batch[i]);
            });
            break;
          } catch (err) {
            if (err instanceof assert.AssertionError) throw err;
            httpFailures++;
            await sleep(200);
          } finally {
            httpInFlight--;
          }
        }
      }
    });

    // MQTT: QoS 1 publishes stay in mqtt.js's outgoing store until their PUBACK, and are re-sent on reconnect.
    const device: MqttClient = await connectAsync(`mqtt://127.0.0.1:${env.MQTT_PORT}`, { username: clientId, password: clientSecret, reconnectPeriod: 250, connectTimeout: 2000 });
    device.on('error', () => {}); // refused reconnects while Vigil is down
    // a failed or timed-out test must not leave its clients re-sending forever
    t.signal.addEventListener('abort', () => {
      abandoned = true;
      streaming = false;
      device.end(true);
    });
    let mqttInFlight = 0;
    const mqtt = (async () => {
      const pending = new Set<Promise<void>>();
      while (streaming) {
        if (pending.size >= MQTT_IN_FLIGHT) {
          await Promise.race(pending);
          continue;
        }
        const batch = Array.from({ length: MQTT_BATCH }, next);
        mqttInFlight++;
        const publish: Promise<void> = device.publishAsync('vigil/ingest/vigil-generic', JSON.stringify(batch), { qos: 1 }).then(() => {
          for (const r of batch) acknowledged.set(key(r), r);
        }).finally(() => {
          mqttInFlight--;
          pending.delete(publish);
        });
        pending.add(publish);
      }
      await Promise.all(pending);
    })();

    const state = () => `${acknowledged.size} acknowledged, in flight: ${httpInFlight} HTTP, ${mqttInFlight} MQTT; ${httpFailures} HTTP failures`;
    const until = async (what: string, ok: () => boolean) => {
      for (const deadline = Date.now() + 180_000; !ok(); await sleep(20)) if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${state()}`);
      t.diagnostic(`${what}: ${state()}`);
    };
    let inFlightAtKill;
    try {
      await until('readings acknowledged over both transports', () => acknowledged.size >= 600);
      await until('requests in flight on both transports', () => httpInFlight > 0 && mqttInFlight > 0);
      inFlightAtKill = { http: httpInFlight, mqtt: mqttInFlight };
      await vigil!.kill();
      const acknowledgedAtKill = acknowledged.size;
      await sleep(500); // clients fail and retry against a dead port
      vigil = await spawnVigil(env);
      await until('more readings after the restart', () => acknowledged.size >= acknowledgedAtKill + 600);
    } catch (err) {
      abandoned = true;
      await device.endAsync(true);
      throw err;
    } finally {
      streaming = false;
    }
    await Promise.all([...http, mqtt]);
    await device.endAsync();
    t.diagnostic(`all acknowledged: ${state()}; in flight at the kill: ${JSON.stringify(inFlightAtKill)}`);

    assert.ok(inFlightAtKill.http > 0 && inFlightAtKill.mqtt > 0, JSON.stringify(inFlightAtKill));
    assert.ok(httpFailures > 0, 'HTTP clients saw the crash and re-sent');
    assert.equal(acknowledged.size, sequence, 'every reading sent was acknowledged in the end');

    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ content: string }>('SELECT content FROM "Observation" WHERE NOT deleted');
      const devices = new Map((await client.query<{ id: string; content: string }>('SELECT id, content FROM "Device"')).rows
        .map((r) => [`Device/${r.id}`, (JSON.parse(r.content) as { identifier: { value: string }[] }).identifier[0].value]));
      const stored = new Map<string, number[]>();
      for (const row of rows) {
        const o = JSON.parse(row.content) as { device: { reference: string }; effectiveDateTime: string; valueQuantity: { value: number } };
        const k = `${devices.get(o.device.reference)}|${new Date(o.effectiveDateTime).toISOString()}`;
        stored.set(k, [...(stored.get(k) ?? []), o.valueQuantity.value]);
      }
      const duplicated = [...stored].filter(([, values]) => values.length > 1);
      assert.deepEqual(duplicated, [], 'no reading is stored twice');
      const missing = [...acknowledged.keys()].filter((k) => !stored.has(k));
      assert.deepEqual(missing, [], 'every acknowledged reading is stored');
      for (const [k, r] of acknowledged) assert.deepEqual(stored.get(k), [r.value], k);
      assert.equal(rows.length, acknowledged.size);
    } finally {
      await client.end();
    }
  });
});
