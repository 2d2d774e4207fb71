import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Observation } from '@medplum/fhirtypes';
import { Redis } from 'ioredis';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { fmt, http, percentiles, recreateDatabase, renewToken, serverCpuSeconds, startServer, timeline } from './support.ts';

/**
 * `npm run bench -- subscriptions [--subscriptions 1000] [--rate 2000] [--seconds 30] [--batch 20] [--warmup 5]`:
 * an API replica and a worker replica (BullMQ on Redis, PostgreSQL) with N active rest-hook
 * subscriptions, one per patient, posting to a receiver in this process. Writes are transaction
 * Bundles of `--batch` Observations, each matching one subscription. Reports, in one run:
 * - notification latency (the resource's commit, `meta.lastUpdated`, → receiver) p50/p99 and
 *   notifications/s at a fixed write rate, after `--warmup` seconds at that rate whose figures are
 *   printed apart: a fresh worker's first deliveries are paid in compiling and connecting;
 * - write throughput flat out for `--seconds`/2 without subscriptions (after `--warmup` seconds of
 *   it, uncounted), then as long with them, then as long without again (the subscriptions set
 *   `off`), and the loss against the mean of the two runs without: the tables grow, and autovacuum
 *   rounds come, during the run, so one run without before the one with would count that as loss;
 * - the CPU each replica and Redis spent per notification at the fixed rate (steadier than the
 *   latency, which swings with whatever else the two cores run);
 * - a raw PostgreSQL COPY of the written Observation rows as the ceiling.
 */
const API_PORT = 8195;
const WORKER_PORT = 8196;
const TICK_MS = 20;
const MAX_IN_FLIGHT = 32;
/** The latency timeline's slices: a run that falls behind shows as a rising line. */
const SLICE_MS = 5_000;
/** A code no built-in bot reacts to: notifications come from the writes alone. */
const CODE = { system: 'http://loinc.org', code: '8302-2', display: 'Body height' };

export async function main(args: string[]): Promise<void> {
  const opt = (name: string, fallback: number): number => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const count = opt('subscriptions', 1000);
  const rate = opt('rate', 2000);
  const seconds = opt('seconds', 30);
  const batch = opt('batch', 20);
  const warmup = opt('warmup', 5);

  // the receiver: every notification carries the resource, whose lastUpdated is its commit
  /** Each notification's latency, at its resource's commit (for the run's timeline). */
  const latencies: { at: number; value: number }[] = [];
  let received = 0;
  let lastReceivedAt = 0;
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      res.end();
      if (chunks.length === 0) return;
      const resource = JSON.parse(Buffer.concat(chunks).toString()) as Observation;
      const commit = Date.parse(resource.meta?.lastUpdated as string);
      latencies.push({ at: commit, value: at - commit });
      received++;
      lastReceivedAt = at;
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;

  const url = await recreateDatabase('vigil_bench_subscriptions');
  const env = {
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    VIGIL_QUEUE_PREFIX: `vigil-bench-${randomUUID()}`,
    VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true',
    VIGIL_OUTBOX_POLL_MS: '200',
  };
  const api = await startServer(url, API_PORT, env);
  let worker: Awaited<ReturnType<typeof startServer>> | undefined;
  let stopping = false;
  const fhir = `${api.base}/fhir/R4`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const redis = new Redis(env.REDIS_URL);
  try {
    worker = await startServer(url, WORKER_PORT, { ...env, VIGIL_ROLE: 'worker' });
    await renewToken(api.base); // startServer took its token from the worker
    for (const [name, server] of [['api', api], ['worker', worker]] as const) {
      server.child.once('exit', (code, signal) => stopping || console.log(`the ${name} replica exited (${code ?? signal}) mid-run`));
    }
    console.log(`bench subscriptions: ${fmt(count)} rest-hook subscriptions, ${fmt(rate)} matching writes/s for ${seconds} s (Bundles of ${batch}); api + worker replicas, BullMQ on Redis, PostgreSQL`);
    const patients = Array.from({ length: count }, (_, i) => `bench-p${i}`);
    await post(fhir, bundle(patients.map((id) => ({ resource: { resourceType: 'Patient', id }, request: { method: 'PUT', url: `Patient/${id}` } }))));

    let written = 0;
    const writeBatch = async () => {
      const entries = Array.from({ length: batch }, () => {
        const n = written++;
        return { resource: observation(patients[n % count], n), request: { method: 'POST', url: 'Observation' } };
      });
      await post(fhir, bundle(entries));
    };

    // 1: flat out, no subscriptions yet, after a warm-up: the run with them finds the API warm too
    if (warmup > 0) await flatOut(writeBatch, batch, warmup);
    const without = await flatOut(writeBatch, batch, seconds / 2);

    // 2: the subscriptions, one per patient, all active
    const setSubscriptions = async (status: 'requested' | 'off') => {
      for (let i = 0; i < count; i += 100) {
        await post(fhir, bundle(patients.slice(i, i + 100).map((id) => ({
          resource: {
            resourceType: 'Subscription', id: `s-${id}`, status, reason: 'bench', criteria: `Observation?subject=Patient/${id}`,
            channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json' },
          },
          request: { method: 'PUT', url: `Subscription/s-${id}` },
        }))));
      }
    };
    await setSubscriptions('requested');
    await waitUntil('every subscription active', async () => (await countOf(fhir, 'Subscription?status=active')) === count, 120_000);

    // 3: the fixed rate: latency from commit to receiver, after a warm-up that is not counted
    const atRate = async (label: string, secs: number) => {
      await renewToken(api.base);
      latencies.length = 0;
      received = 0;
      const before = written;
      const cpuBefore = await cpuSeconds(api.base, worker!.base, redis);
      const fixed = await fixedRate(writeBatch, batch, rate, secs);
      const expected = written - before;
      const quiet = progress(label, () => received, expected);
      await waitUntil('every notification', () => received >= expected, 600_000).catch((err: Error) => console.log(err.message)).finally(quiet);
      const cpuAfter = await cpuSeconds(api.base, worker!.base, redis);
      const perNotification = (key: keyof typeof cpuAfter) => fmt(((cpuAfter[key] - cpuBefore[key]) / Math.max(1, received)) * 1e6);
      return {
        cpu: `api ${perNotification('api')} µs, worker ${perNotification('worker')} µs, Redis ${perNotification('redis')} µs`,
        fixed, expected, received, perSecond: received / ((lastReceivedAt - fixed.startedAt) / 1000),
        latency: percentiles(latencies.map((l) => l.value)), timeline: timeline(latencies, fixed.startedAt, SLICE_MS),
      };
    };
    const warm = warmup > 0 ? await atRate('warm-up', warmup) : undefined;
    const measured = await atRate('fixed rate', seconds);

    // 4: flat out with the subscriptions matching (and delivering) every write
    await renewToken(api.base);
    received = 0;
    const beforeFlat = written;
    const withSubs = await flatOut(writeBatch, batch, seconds / 2);
    const quietToo = progress('flat out', () => received, written - beforeFlat);
    await waitUntil('the backlog delivered', () => received >= written - beforeFlat, 600_000).catch((err: Error) => console.log(err.message)).finally(quietToo);

    // 5: flat out without them again
    await renewToken(api.base);
    await setSubscriptions('off');
    await waitUntil('no subscription active', async () => (await countOf(fhir, 'Subscription?status=active')) === 0, 120_000);
    const withoutAfter = await flatOut(writeBatch, batch, seconds / 2);
    const baseline = (without.perSecond + withoutAfter.perSecond) / 2;

    // ceiling: the written Observation rows copied raw
    const rows = (await client.query<{ id: string; content: string }>('SELECT id, content FROM "Observation" LIMIT 200000')).rows;
    await client.query('CREATE UNLOGGED TABLE raw_copy (id text, content text)');
    const c0 = performance.now();
    await pipeline(Readable.from(rows.map((r) => `${r.id}\t${r.content.replaceAll('\\', '\\\\')}\n`)), client.query(copyFrom('COPY raw_copy (id, content) FROM STDIN')));
    const copyRate = rows.length / ((performance.now() - c0) / 1000);

    console.log('');
    console.log(`raw PostgreSQL COPY (same Observation rows, ${fmt(rows.length)}): ${fmt(copyRate)} rows/s   <- ceiling`);
    if (warm) console.log(`warm-up, not counted (${fmt(warmup)} s at the fixed rate): latency p50 ${fmt(warm.latency.p50)} ms, p95 ${fmt(warm.latency.p95)} ms, p99 ${fmt(warm.latency.p99)} ms`);
    const { fixed, expected, latency: l } = measured;
    console.log(`fixed rate: ${fmt(fixed.perSecond)} writes/s achieved of ${fmt(rate)} asked; ${fmt(measured.received)} of ${fmt(expected)} notifications, ${fmt(measured.perSecond)}/s`);
    console.log(`notification latency (commit → receiver): p50 ${fmt(l.p50)} ms, p95 ${fmt(l.p95)} ms, p99 ${fmt(l.p99)} ms`);
    console.log(`  by ${fmt(SLICE_MS / 1000)} s of commits, p50/p99 ms: ${measured.timeline}`);
    console.log(`CPU per notification at the fixed rate (writes, matching and delivery): ${measured.cpu}`);
    console.log(
      `write throughput flat out: ${fmt(without.perSecond)}/s without subscriptions, ${fmt(withSubs.perSecond)}/s with ${fmt(count)} matching, ` +
        `${fmt(withoutAfter.perSecond)}/s without again (${fmt((1 - withSubs.perSecond / baseline) * 100, 1)}% loss against their mean)`,
    );
    const share = (r: { ownCpu: number }) => `${fmt(r.ownCpu * 100)}%`;
    console.log(`  this bench process's CPU meanwhile (writes, and the receiver's notifications): ${share(without)}, ${share(withSubs)}, ${share(withoutAfter)} of a core`);
  } finally {
    stopping = true;
    await client.end();
    await worker?.stop();
    await api.stop();
    receiver.closeAllConnections();
    receiver.close();
    await dropQueues(redis, env.VIGIL_QUEUE_PREFIX);
    await redis.quit();
  }
}

/** CPU seconds so far of each replica (its /metrics) and of Redis (INFO cpu). */
async function cpuSeconds(api: string, worker: string, redis: Redis): Promise<{ api: number; worker: number; redis: number }> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
  return { api: await serverCpuSeconds(api), worker: await serverCpuSeconds(worker), redis: field('used_cpu_sys') + field('used_cpu_user') };
}

/** The run's queues are its own (a fresh prefix): they go with it. */
async function dropQueues(redis: Redis, prefix: string): Promise<void> {
  for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 })) {
    if ((keys as string[]).length) await redis.del(...(keys as string[]));
  }
}

function observation(patient: string, n: number): Observation {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [CODE] },
    subject: { reference: `Patient/${patient}` },
    effectiveDateTime: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(),
    valueQuantity: { value: 150 + (n % 50), unit: 'cm', system: 'http://unitsofmeasure.org', code: 'cm' },
  };
}

const bundle = (entry: unknown[]) => ({ resourceType: 'Bundle', type: 'transaction', entry });

async function post(fhir: string, body: unknown): Promise<void> {
  const res = await http('POST', fhir, JSON.stringify(body));
  if (res.status !== 200) throw new Error(`transaction: ${res.status} ${res.body.slice(0, 300)}`);
}

async function countOf(fhir: string, query: string): Promise<number> {
  const res = await http('GET', `${fhir}/${query}&_summary=count&_total=accurate`);
  return (JSON.parse(res.body) as { total: number }).total;
}

async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A line every 10 s while the receiver catches up, so a slow drain shows. */
function progress(label: string, received: () => number, expected: number): () => void {
  const t0 = Date.now();
  const timer = setInterval(() => console.log(`  ${label}: ${fmt(received())} of ${fmt(expected)} notifications after ${fmt((Date.now() - t0) / 1000)} s`), 10_000);
  return () => clearInterval(timer);
}

/**
 * Bundles back to back, 8 in flight, for `seconds`: resources written per second, and this
 * process's CPU meanwhile (the load and, with subscriptions, the receiver) as a share of one core.
 */
async function flatOut(write: () => Promise<void>, batch: number, seconds: number): Promise<{ perSecond: number; ownCpu: number }> {
  let done = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (performance.now() < until) {
      await write();
      done += batch;
    }
  }));
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: done / (elapsed / 1000), ownCpu: (cpu.user + cpu.system) / 1000 / elapsed };
}

/** Open loop: Bundles started on a clock at `rate` resources/s, at most MAX_IN_FLIGHT at once. */
async function fixedRate(write: () => Promise<void>, batch: number, rate: number, seconds: number): Promise<{ perSecond: number; startedAt: number }> {
  const startedAt = Date.now();
  const inFlight = new Set<Promise<void>>();
  let due = 0;
  let done = 0;
  for (let last = startedAt; Date.now() < startedAt + seconds * 1000;) {
    await new Promise((r) => setTimeout(r, TICK_MS));
    const now = Date.now();
    due += (rate * (now - last)) / 1000 / batch;
    last = now;
    while (due >= 1 && inFlight.size < MAX_IN_FLIGHT) {
      due -= 1;
      const p: Promise<void> = write().then(() => {
        done += batch;
      }).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    // behind: the backlog is dropped rather than bursting later
    due = Math.min(due, MAX_IN_FLIGHT);
  }
  await Promise.all(inFlight);
  return { perSecond: done / ((Date.now() - startedAt) / 1000), startedAt };
}
