import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { connectAsync, type IClientOptions } from 'mqtt';
import pino from 'pino';
import type { AccessPolicy } from '../../src/auth/access-policy.ts';
import { parseScopes } from '../../src/auth/smart-scopes.ts';
import { startMqtt, type Authenticate } from '../../src/ingest/mqtt.ts';
import { packetSizeLimit } from '../../src/ingest/mqtt-packet-size.ts';
import type { IngestGateway } from '../../src/ingest/gateway.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { DRIVERS, authHeader, clientCredentialsToken, freePort, request, useServer, type TestServer } from '../support.ts';
import { authorizationCodeFlow } from '../auth/smart-flow.ts';

const MOSQUITTO = 'mqtt://127.0.0.1:1883';
const silent = createLogger('silent');
const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
let clock = Date.now() - 3_600_000;
/** Distinct times: readings of one device, type and time are one Observation. */
const tick = () => new Date((clock += 1000)).toISOString();

/** A mapping of its own (vigil-generic under a new name), and a device enrolled for Lookup. */
async function setUp(s: TestServer) {
  const mapping = unique('mqtt');
  const deviceId = unique('dev');
  const generic = await fetch(`${s.base}/ingest/mappings/vigil-generic`, { headers: authHeader() }).then((r) => r.json()) as Record<string, unknown>;
  const { name: _name, updatedAt: _updatedAt, ...definition } = generic;
  const put = await fetch(`${s.base}/ingest/mappings/${mapping}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...authHeader() }, body: JSON.stringify(definition) });
  assert.equal(put.status, 201);
  const patient = (await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient' })).body;
  await request('POST', `${s.fhir}/Device`, { resourceType: 'Device', identifier: [{ system: 'urn:serial', value: deviceId }], patient: { reference: `Patient/${patient.id}` } });
  const reading = (value: number) => ({ deviceId, timestamp: tick(), type: 'heart-rate', value, unit: '/min' });
  return { mapping, topic: `vigil/ingest/${mapping}`, patientId: patient.id as string, reading };
}

async function heartRates(s: TestServer, patientId: string): Promise<number[]> {
  const bundle = (await request('GET', `${s.fhir}/Observation?patient=Patient/${patientId}&code=http://loinc.org|8867-4`)).body;
  return (bundle.entry ?? []).map((e: any) => e.resource.valueQuantity.value).sort();
}

async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function publish(url: string, topic: string, payload: unknown, options: IClientOptions = {}): Promise<void> {
  const device = await connectAsync(url, { reconnectPeriod: 100, ...options });
  try {
    await device.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
  } finally {
    await device.endAsync();
  }
}

const SYSTEM: AccessPolicy = { clientId: 'test-device', sub: 'test-device', grants: parseScopes('system/Observation.c'), userPatients: [] };
/** For brokers a test starts itself: every client is a device with system/Observation.c. */
const anyDevice: Authenticate = async () => ({ clientId: 'test-device', policy: async () => SYSTEM });
/** Brokers a test starts itself record no AuditEvents (the suite's own broker does: auth/security-audit.test.ts). */
const noAudit = () => {};
/** HTTP's default body limit (VIGIL_MAX_BODY_BYTES), which MQTT payloads share. */
const MAX_BODY = 16 * 1024 * 1024;
/** The suite's bootstrap client as MQTT credentials. */
const asClient = (s: TestServer): IClientOptions => ({ username: s.clientId, password: s.clientSecret });

/** The real gateway, except that its first call fails as if the database were down. */
function failingOnce(gateway: IngestGateway): Pick<IngestGateway, 'ingest' | 'reject'> & { calls: number } {
  return {
    calls: 0,
    async ingest(mapping, messages) {
      if (this.calls++ === 0) throw new Error('database unavailable');
      return gateway.ingest(mapping, messages);
    },
    reject: (mapping, messages, reason) => gateway.reject(mapping, messages, reason),
  };
}

async function deadLetters(s: TestServer, mapping: string): Promise<any[]> {
  const body = await fetch(`${s.base}/ingest/dead-letters?mapping=${encodeURIComponent(mapping)}`, { headers: authHeader() }).then((r) => r.json()) as any;
  return body.deadLetters;
}

/** Publishes at QoS 1 on an open connection: 'acknowledged', or 'closed' when the broker drops the connection first. */
async function publishOrClosed(url: string, topic: string, payload: string | Buffer): Promise<'acknowledged' | 'closed'> {
  const device = await connectAsync(url, { reconnectPeriod: 0 });
  try {
    const closed = new Promise<'closed'>((resolve) => device.once('close', () => resolve('closed')));
    return await Promise.race([device.publishAsync(topic, payload, { qos: 1 }).then(() => 'acknowledged' as const, () => 'closed' as const), closed]);
  } finally {
    await device.endAsync(true);
  }
}

for (const driver of DRIVERS) {
  describe(`MQTT ingest on the embedded broker (${driver})`, async () => {
    const port = await freePort();
    const s = useServer(driver, { MQTT_PORT: String(port), LOG_LEVEL: 'error' });
    const url = `mqtt://127.0.0.1:${port}`;

    it('sends the PUBACK only once the Observation is stored', async () => {
      assert.deepEqual([s.vigil.mqtt.mode, s.vigil.mqtt.port], ['embedded', port]);
      const { topic, patientId, reading } = await setUp(s);
      await publish(url, topic, reading(71), asClient(s));
      assert.deepEqual(await heartRates(s, patientId), [71], 'searchable as soon as the PUBACK arrives');
      await publish(url, topic, [reading(72), reading(73)], asClient(s));
      assert.deepEqual(await heartRates(s, patientId), [71, 72, 73]);
    });

    it('ingests a device\'s publishes in flight together, acknowledging them in the order sent', async () => {
      const { topic, patientId, reading } = await setUp(s);
      const device = await connectAsync(url, asClient(s));
      try {
        const acked: number[] = [];
        // the first carries the most work, so acknowledging as each commit lands would reorder them
        const values = Array.from({ length: 12 }, (_, i) => 60 + i);
        const payloads = values.map((v, i) => (i === 0 ? Array.from({ length: 40 }, () => reading(v)) : [reading(v)]));
        await Promise.all(payloads.map((p, i) => device.publishAsync(topic, JSON.stringify(p), { qos: 1 }).then(() => acked.push(i))));
        assert.deepEqual(acked, values.map((_, i) => i));
      } finally {
        await device.endAsync();
      }
      const stored = await request('GET', `${s.fhir}/Observation?patient=Patient/${patientId}&_summary=count`);
      assert.equal(stored.body.total, 40 + 11);
    });

    it('dead-letters a non-JSON payload, and publishes to an unknown mapping, replayable once it exists, logging that once', async () => {
      const { mapping, topic, patientId, reading } = await setUp(s);
      await publish(url, topic, 'HR=71;not json', asClient(s));
      assert.deepEqual((await deadLetters(s, mapping)).map((d) => d.message), ['HR=71;not json']);

      const lines: { msg: string; mapping?: string }[] = [];
      const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      const transport = await startMqtt({ gateway: s.vigil.gateway, logger, port: await freePort(), authenticate: anyDevice, audit: noAudit, maxPayloadBytes: MAX_BODY });
      const nowhere = unique('not-yet');
      const endless = `x${'\u0000'.repeat(2)}${'y'.repeat(3000)}`;
      const hr = reading(77);
      try {
        await publish(`mqtt://127.0.0.1:${transport.port}`, `vigil/ingest/${nowhere}`, [hr, 'again']);
        // no mapping can have this name, nor does it fit the dead letters' index whole: kept, cut, without NUL
        await publish(`mqtt://127.0.0.1:${transport.port}`, `vigil/ingest/${endless}`, reading(78));
      } finally {
        await transport.stop();
      }
      assert.deepEqual(lines.map((l) => [l.mapping, l.msg]), [
        [nowhere, 'MQTT messages for an unknown mapping are dead-lettered'],
        [endless, 'MQTT messages for an unknown mapping are dead-lettered'],
      ]);
      const dead = await deadLetters(s, nowhere);
      assert.deepEqual(dead.map((d) => d.reason), [`Unknown mapping "${nowhere}"`, `Unknown mapping "${nowhere}"`]);
      const letter = dead.find((d) => d.message !== 'again');
      assert.deepEqual(letter.message, hr);
      assert.equal((await deadLetters(s, `x\uFFFD\uFFFD${'y'.repeat(253)}`)).length, 1);

      const generic = await fetch(`${s.base}/ingest/mappings/vigil-generic`, { headers: authHeader() }).then((r) => r.json()) as Record<string, unknown>;
      const { name: _name, updatedAt: _updatedAt, ...definition } = generic;
      await fetch(`${s.base}/ingest/mappings/${nowhere}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...authHeader() }, body: JSON.stringify(definition) });
      const replay = await fetch(`${s.base}/ingest/dead-letters/${letter.id}/$replay`, { method: 'POST', headers: authHeader() }).then((r) => r.json()) as any;
      assert.equal(replay.result.status, 'ok');
      assert.deepEqual(await heartRates(s, patientId), [77]);
    });

    it('dead-letters a payload over the size limit unread, and closes the connection on a packet far larger', async () => {
      const { mapping, topic, patientId, reading } = await setUp(s);
      const transport = await startMqtt({ gateway: s.vigil.gateway, logger: silent, port: await freePort(), authenticate: anyDevice, audit: noAudit, maxPayloadBytes: 1024 });
      const local = `mqtt://127.0.0.1:${transport.port}`;
      try {
        const over = JSON.stringify(Array.from({ length: 20 }, () => reading(70)));
        assert.ok(over.length > 1024);
        assert.equal(await publishOrClosed(local, topic, over), 'acknowledged');
        const dead = await deadLetters(s, mapping);
        assert.deepEqual(dead.map((d) => [d.message, d.reason]), [[`(not kept: ${over.length} bytes)`, `The message is ${over.length} bytes, more than the limit of 1024 (VIGIL_MAX_BODY_BYTES)`]]);

        // beyond what the limit allows a packet (the payload and room for a topic), it is not even read
        assert.equal(await publishOrClosed(local, topic, Buffer.alloc(4 * 1024 * 1024, ' ')), 'closed');
        assert.equal((await deadLetters(s, mapping)).length, 1);
        assert.equal(await publishOrClosed(local, topic, JSON.stringify(reading(71))), 'acknowledged', 'other connections are unaffected');
        assert.deepEqual(await heartRates(s, patientId), [71]);
      } finally {
        await transport.stop();
      }
    });

    it('leaves a reading unacknowledged when ingest fails, so the device re-sends it', async () => {
      const { topic, patientId, reading } = await setUp(s);
      const gateway = failingOnce(s.vigil.gateway);
      const transport = await startMqtt({ gateway, logger: silent, port: await freePort(), authenticate: anyDevice, audit: noAudit, maxPayloadBytes: MAX_BODY });
      try {
        await publish(`mqtt://127.0.0.1:${transport.port}`, topic, reading(88));
        assert.equal(gateway.calls, 2, 'the first attempt failed, the re-sent one was ingested');
        assert.deepEqual(await heartRates(s, patientId), [88]);
      } finally {
        await transport.stop();
      }
    });

    it('takes an OAuth client id and secret, or an access token, and refuses everyone else (CONNACK 5)', async () => {
      const { topic, patientId, reading } = await setUp(s);
      await publish(url, topic, reading(64), asClient(s));
      await publish(url, topic, reading(65), { username: 'any-name', password: await clientCredentialsToken(s.base, s.clientId, s.clientSecret, 'system/Observation.c') });
      assert.deepEqual(await heartRates(s, patientId), [64, 65]);

      await request('POST', `${s.base}/admin/clients`, { client_id: 'mqtt-reader', secret: 'reader-secret-0123456789', scopes: 'system/Observation.rs' });
      const refused: IClientOptions[] = [
        {},
        { username: s.clientId },
        { username: s.clientId, password: `${s.clientSecret}x` },
        { username: 'no-such-client', password: s.clientSecret },
        { username: s.clientId, password: 'eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl' },
        { username: 'mqtt-reader', password: 'reader-secret-0123456789' },
        { username: 'mqtt-reader', password: await clientCredentialsToken(s.base, 'mqtt-reader', 'reader-secret-0123456789', 'system/Observation.rs') },
      ];
      for (const options of refused) {
        await assert.rejects(connectAsync(url, { ...options, reconnectPeriod: 0 }), (err: any) => err.code === 5, JSON.stringify(options));
      }
    });

    it('is an ingest endpoint only: other topics close the connection unacknowledged, subscriptions are refused', async () => {
      const device = await connectAsync(url, { ...asClient(s), reconnectPeriod: 0 });
      try {
        await assert.rejects(device.subscribeAsync('vigil/ingest/+', { qos: 1 }), (err: any) => err.packet.granted[0] === 128);
        const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
        const puback = device.publishAsync('patients/p1/notes', 'hello', { qos: 1 }).then(() => 'acknowledged', () => 'failed');
        await closed;
        assert.notEqual(await Promise.race([puback, new Promise((r) => setTimeout(() => r('pending'), 200))]), 'acknowledged');
      } finally {
        await device.endAsync(true);
      }
    });

    it('lets a token write only for the patients it reaches: others are dropped, not dead-lettered', async () => {
      const mine = await setUp(s);
      const theirs = await setUp(s);
      const username = `${unique('patient')}@test`;
      const password = 'correct horse battery';
      assert.equal((await request('POST', `${s.base}/admin/users`, { username, password, fhirUser: `Patient/${mine.patientId}` })).status, 201);
      const redirectUri = 'http://localhost:9/callback';
      const clientId = unique('watch-app');
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: clientId, redirect_uris: [redirectUri], scopes: 'user/Observation.c' })).status, 201);
      const token = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId, redirectUri, scope: 'openid fhirUser user/Observation.c', username, password });
      assert.equal(token.status, 200, JSON.stringify(token.body));
      const asPatient = { username: clientId, password: token.body.access_token as string };

      await publish(url, mine.topic, [mine.reading(70), theirs.reading(99)], asPatient);
      await publish(url, theirs.topic, theirs.reading(98), asPatient);
      assert.deepEqual(await heartRates(s, mine.patientId), [70], 'in the same publish as a forbidden reading');
      assert.deepEqual(await heartRates(s, theirs.patientId), []);
      for (const mapping of [mine.mapping, theirs.mapping]) {
        const dead = await fetch(`${s.base}/ingest/dead-letters?mapping=${mapping}`, { headers: authHeader() }).then((r) => r.json()) as any;
        assert.deepEqual(dead.deadLetters, []);
      }

      const creating = unique('mqtt-create');
      const generic = await fetch(`${s.base}/ingest/mappings/vigil-generic`, { headers: authHeader() }).then((r) => r.json()) as Record<string, unknown>;
      const { name: _name, updatedAt: _updatedAt, ...definition } = generic;
      await fetch(`${s.base}/ingest/mappings/${creating}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...authHeader() }, body: JSON.stringify({ ...definition, identityResolution: 'Create' }) });
      const stranger = unique('mrn');
      await publish(url, `vigil/ingest/${creating}`, { deviceId: unique('dev'), patientId: stranger, timestamp: tick(), type: 'heart-rate', value: 80, unit: '/min' }, asPatient);
      const created = await request('GET', `${s.fhir}/Patient?identifier=urn:vigil:patient-id|${stranger}`);
      assert.deepEqual(created.body.entry ?? [], [], 'Create mode needs a token for every patient');
    });

    it('closes the connection unacknowledged once the device\'s credentials have expired', async () => {
      let valid = true;
      const expiring: Authenticate = async () => ({ clientId: 'expiring', policy: async () => {
        if (!valid) throw new Error('The access token is invalid or expired');
        return SYSTEM;
      } });
      const transport = await startMqtt({ gateway: s.vigil.gateway, logger: silent, port: await freePort(), authenticate: expiring, audit: noAudit, maxPayloadBytes: MAX_BODY });
      const { topic, patientId, reading } = await setUp(s);
      const device = await connectAsync(`mqtt://127.0.0.1:${transport.port}`, { reconnectPeriod: 0 });
      try {
        await device.publishAsync(topic, JSON.stringify(reading(66)), { qos: 1 });
        valid = false;
        const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
        const puback = device.publishAsync(topic, JSON.stringify(reading(67)), { qos: 1 }).then(() => 'acknowledged', () => 'failed');
        await closed;
        assert.notEqual(await Promise.race([puback, new Promise((r) => setTimeout(() => r('pending'), 200))]), 'acknowledged');
        assert.deepEqual(await heartRates(s, patientId), [66]);
      } finally {
        await device.endAsync(true);
        await transport.stop();
      }
    });
  });

  describe(`MQTT ingest from an external broker (${driver})`, () => {
    const clientId = unique('vigil-test');
    const url = `${MOSQUITTO}?clientId=${clientId}`;
    const s = useServer(driver, { MQTT_URL: url, MQTT_PORT: '0' });
    after(async () => {
      // Vigil's session is persistent by design; a test's must not outlive it.
      const cleanup = await connectAsync(MOSQUITTO, { clientId, clean: true });
      await cleanup.endAsync();
    });

    it('ingests QoS 1 publishes relayed by Mosquitto', async () => {
      assert.equal(s.vigil.mqtt.mode, 'external');
      const { topic, patientId, reading } = await setUp(s);
      await publish(MOSQUITTO, topic, [reading(75), reading(76)]);
      assert.deepEqual(await eventually(() => heartRates(s, patientId), (v) => v.length === 2), [75, 76]);
    });

    it('dead-letters a binary payload (NUL, which PostgreSQL text cannot hold, replaced)', async () => {
      const { mapping, topic } = await setUp(s);
      await publish(MOSQUITTO, topic, '\u0000binary');
      const dead = await eventually(
        () => fetch(`${s.base}/ingest/dead-letters?mapping=${mapping}`, { headers: authHeader() }).then((r) => r.json()) as Promise<any>,
        (d) => d.deadLetters.length > 0,
      );
      assert.deepEqual(dead.deadLetters.map((d: any) => d.message), ['\uFFFDbinary']);
    });

    it('dead-letters publishes to a mapping that does not exist yet', async () => {
      const { reading } = await setUp(s);
      const nowhere = unique('not-yet');
      const hr = reading(79);
      await publish(MOSQUITTO, `vigil/ingest/${nowhere}`, hr);
      const dead = await eventually(() => deadLetters(s, nowhere), (d) => d.length > 0);
      assert.deepEqual(dead.map((d) => [d.message, d.reason]), [[hr, `Unknown mapping "${nowhere}"`]]);
    });

    it('gets what was published while Vigil was away, and redelivers what failed to commit', async () => {
      const { topic, patientId, reading } = await setUp(s);
      await s.vigil.mqtt.stop();
      await publish(MOSQUITTO, topic, reading(90));
      const gateway = failingOnce(s.vigil.gateway);
      const transport = await startMqtt({ gateway, logger: silent, url, port: 0, authenticate: anyDevice, audit: noAudit, maxPayloadBytes: MAX_BODY });
      try {
        assert.deepEqual(await eventually(() => heartRates(s, patientId), (v) => v.length === 1), [90]);
        assert.equal(gateway.calls, 2, 'the session kept the message, and the failed attempt was redelivered');
      } finally {
        await transport.stop();
      }
    });
  });
}

describe('MQTT packet size limit', () => {
  /** Feeds the bytes in the given chunk sizes; the first oversized length reported, if any. */
  const feed = (max: number, bytes: number[], chunk: number) => {
    const limit = packetSizeLimit(max);
    for (let i = 0; i < bytes.length; i += chunk) {
      const over = limit(Buffer.from(bytes.slice(i, i + chunk)));
      if (over !== undefined) return over;
    }
    return undefined;
  };
  /** A PUBLISH's fixed header: type, then the remaining length, 7 bits a byte. */
  const header = (length: number) => {
    const bytes = [0x30];
    let n = length;
    do {
      bytes.push((n % 128) | (n >= 128 ? 0x80 : 0));
      n = Math.floor(n / 128);
    } while (n > 0);
    return bytes;
  };
  const packet = (length: number) => [...header(length), ...new Array<number>(length).fill(0x41)];

  it('reads each packet\'s announced length, however the bytes are split, and reports the first one over the limit', () => {
    const stream = [...packet(300), 0xc0, 0x00, ...packet(0), ...packet(127), ...packet(128), ...packet(301), ...packet(5)];
    for (const chunk of [1, 2, 3, 7, 128, stream.length]) {
      assert.equal(feed(300, stream, chunk), 301, `chunks of ${chunk}`);
      assert.equal(feed(301, stream, chunk), undefined, `chunks of ${chunk}`);
    }
    // the header alone is enough: the body need never arrive
    assert.equal(feed(1000, header(268_435_455), 1), 268_435_455);
  });
});

describe('MQTT start-up when the port is taken', () => {
  it('starts without the embedded broker and warns once, naming MQTT_PORT and MQTT_URL', async () => {
    const mosquitto = await connectAsync(MOSQUITTO, { reconnectPeriod: 0 });
    await mosquitto.endAsync(); // something does listen on 1883
    const { lines, port, stop } = await startVigilProcess({ MQTT_PORT: '1883' });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      const warnings = lines().filter((l) => l.level === 40 && /MQTT/.test(l.msg));
      assert.equal(warnings.length, 1, JSON.stringify(lines()));
      assert.match(warnings[0].msg, /port 1883/);
      assert.match(warnings[0].msg, /MQTT_PORT/);
      assert.match(warnings[0].msg, /MQTT_URL/);
    } finally {
      await stop();
    }
  });
});

/** Vigil in a child process, so that its JSON log lines can be read. */
async function startVigilProcess(env: Record<string, string>) {
  const script = `
    import { loadConfig } from ${JSON.stringify(new URL('../../src/config.ts', import.meta.url).href)};
    import { startVigil } from ${JSON.stringify(new URL('../../src/main.ts', import.meta.url).href)};
    const config = loadConfig(process.env);
    config.dataDir = 'memory://';
    const vigil = await startVigil(config);
    console.log(JSON.stringify({ ready: vigil.port }));
    process.stdin.on('end', () => vigil.stop().then(() => process.exit(0)));
    process.stdin.resume();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', DATABASE_URL: '', MQTT_URL: '', ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const parsed: any[] = [];
  let buffered = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`Vigil exited with ${code}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const complete = buffered.split('\n');
      buffered = complete.pop() as string;
      for (const line of complete) {
        const entry = JSON.parse(line);
        parsed.push(entry);
        if (entry.ready) resolve(entry.ready);
      }
    });
  });
  return {
    port,
    lines: () => parsed.filter((l) => !l.ready),
    stop: () => new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.stdin.end();
    }),
  };
}
