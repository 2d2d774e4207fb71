import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config.ts';
import { startVigil } from '../src/main.ts';
import { backlogGauge } from '../src/ops/metrics.ts';
import { DRIVERS, freePort, request, useServer } from './support.ts';
import { pgliteSnapshot } from './templates.ts';

for (const driver of DRIVERS) {
  describe(`health and metrics (${driver})`, () => {
    const s = useServer(driver);

    it('answers /healthz and /readyz', async () => {
      assert.deepEqual(await (await fetch(`${s.base}/healthz`)).json(), { status: 'ok' });
      const ready = await fetch(`${s.base}/readyz`);
      assert.equal(ready.status, 200);
    });

    it('exports request, pool and event-loop metrics for Prometheus', async () => {
      await request('GET', `${s.fhir}/Patient?_count=1`);
      await request('GET', `${s.fhir}/Patient/missing`);
      const text = await (await fetch(`${s.base}/metrics`)).text();
      assert.match(text, /vigil_http_request_duration_seconds_count\{method="GET",route="\/fhir\/R4\/:type",status="200"\} \d+/);
      assert.match(text, /vigil_http_request_duration_seconds_count\{method="GET",route="\/fhir\/R4\/:type\/:id",status="404"\} \d+/);
      assert.match(text, /vigil_db_pool_connections\{state="total"\} \d+/);
      assert.match(text, /nodejs_eventloop_lag_seconds \d/);
    });
  });
}

describe('backlog gauges', () => {
  it('read at scrape time; a queue or database that fails or hangs makes the value NaN, never the scrape fail or hang', async () => {
    const registry = new Registry();
    backlogGauge(registry, 'test_ok', 'answers', async () => 7);
    backlogGauge(registry, 'test_down', 'fails', async () => {
      throw new Error('connection refused');
    });
    backlogGauge(registry, 'test_hung', 'never answers', () => new Promise<number>(() => undefined));
    const started = Date.now();
    const text = await registry.metrics();
    assert.ok(Date.now() - started < 3_000);
    assert.match(text, /^test_ok 7$/m);
    assert.match(text, /^test_down NaN$/im);
    assert.match(text, /^test_hung NaN$/im);
  });
});

describe('start-up', () => {
  it('answers requests that arrive while it starts with 503 and Retry-After, never leaving one unanswered', async () => {
    const port = await freePort();
    const config = loadConfig({ PORT: String(port), LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', MQTT_PORT: '0' });
    config.dataDir = 'memory://';
    config.dataSnapshot = await pgliteSnapshot();
    const starting = startVigil(config);
    let started = false;
    void starting.then(() => (started = true));
    const statuses: number[] = [];
    try {
      while (!started) {
        // a request left hanging would end in this timeout, failing the test
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch((err: Error) => {
          if (err.name === 'TimeoutError') throw err;
          return undefined; // not listening yet
        });
        if (!res) continue;
        statuses.push(res.status);
        if (res.status === 503) {
          assert.equal(res.headers.get('retry-after'), '1');
          assert.equal(((await res.json()) as { issue: { code: string }[] }).issue[0].code, 'transient');
        } else await res.body?.cancel();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    } finally {
      await (await starting).stop();
    }
    assert.ok(statuses.every((s) => s === 503 || s === 200), statuses.join());
  });
});

describe('configuration', () => {
  it('has embedded defaults and reads every documented variable', () => {
    const d = loadConfig({});
    assert.equal(d.port, 8103);
    assert.equal(d.baseUrl, 'http://localhost:8103');
    assert.match(d.dataDir, /\.vigil\/data$/);
    assert.equal(d.demo, true);
    assert.equal(d.databaseUrl, undefined);
    const c = loadConfig({ PORT: '9000', VIGIL_BASE_URL: 'https://vigil.example/', DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://r', LOG_LEVEL: 'debug', VIGIL_DATA_DIR: '/tmp/v' });
    assert.equal(c.baseUrl, 'https://vigil.example');
    assert.equal(c.demo, false, 'no demo data on a real database unless asked');
    assert.equal(c.redisUrl, 'redis://r');
    assert.equal(loadConfig({ VIGIL_DEMO: 'off' }).demo, false);
    assert.throws(() => loadConfig({ PORT: 'abc' }), /PORT/);
    assert.throws(() => loadConfig({ VIGIL_ROLE: 'boss' }), /VIGIL_ROLE/);
    assert.equal(loadConfig({}).jobLockMs, 30_000);
    assert.equal(loadConfig({ VIGIL_JOB_LOCK_SECONDS: '10' }).jobLockMs, 10_000);
    assert.throws(() => loadConfig({ VIGIL_JOB_LOCK_SECONDS: '5' }), /at least 10/);
    assert.equal(loadConfig({}).botsEnabled, true);
    assert.equal(loadConfig({ VIGIL_BOTS: 'off' }).botsEnabled, false);
    assert.throws(() => loadConfig({ VIGIL_BOTS: 'no' }), /VIGIL_BOTS must be on or off/);
  });

  it('bots on an external FHIR server need a notification secret, and all of their credentials or none', () => {
    const secret = 'x'.repeat(32);
    assert.equal(loadConfig({}).externalBots, undefined);
    assert.throws(() => loadConfig({ VIGIL_BOTS_FHIR_URL: 'http://hapi:8080/fhir' }), /VIGIL_BOTS_NOTIFY_SECRET/);
    assert.throws(() => loadConfig({ VIGIL_BOTS_FHIR_URL: 'http://hapi:8080/fhir', VIGIL_BOTS_NOTIFY_SECRET: 'short' }), /at least 32/);
    assert.throws(() => loadConfig({ VIGIL_BOTS_FHIR_URL: 'http://hapi:8080/fhir', VIGIL_BOTS_NOTIFY_SECRET: secret, VIGIL_BOTS_FHIR_CLIENT_ID: 'vigil' }), /go together/);
    assert.deepEqual(loadConfig({ VIGIL_BOTS_FHIR_URL: 'http://hapi:8080/fhir', VIGIL_BOTS_NOTIFY_SECRET: secret, VIGIL_BOTS_NOTIFY_URL: 'http://worker:8103/bots/notify/' }).externalBots, {
      fhirUrl: 'http://hapi:8080/fhir',
      credentials: undefined,
      notifyUrl: 'http://worker:8103/bots/notify',
      notifySecret: secret,
    });
  });
});
