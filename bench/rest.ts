import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { Observation } from '@medplum/fhirtypes';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { loadDefinitions } from '../server/src/definitions.ts';
import { quote } from '../server/src/store/columns.ts';
import { rowParams } from '../server/src/store/repository.ts';
import { newResourceId } from '../server/src/store/ids.ts';
import { historyTable, tableColumns } from '../server/src/store/schema.ts';
import { databaseUrl, fmt, http, load, percentiles, recreateDatabase, serverCpuSeconds, startServer } from './support.ts';

/**
 * `npm run bench -- rest [--observations N] [--patients N] [--heavy N]`: the FHIR REST API on PostgreSQL with
 * 1,000,000 vital-sign Observations. Reports create/s, read/s, hot-path search latency, $lastn and
 * last-hour windows on a patient with 100,000 Observations (--heavy), and a raw COPY of the same JSON
 * rows in the same run as the ceiling.
 */
const VITALS = [
  { code: '8867-4', display: 'Heart rate', unit: '/min', base: 72, spread: 15 },
  { code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry', unit: '%', base: 96, spread: 3 },
  { code: '9279-1', display: 'Respiratory rate', unit: '/min', base: 16, spread: 4 },
  { code: '8310-5', display: 'Body temperature', unit: 'Cel', base: 36.8, spread: 0.6 },
  { code: '8480-6', display: 'Systolic blood pressure', unit: 'mm[Hg]', base: 125, spread: 20 },
];

function observation(patient: string, i: number, time: number): Observation {
  const v = VITALS[i % VITALS.length];
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: v.code, display: v.display }] },
    subject: { reference: `Patient/${patient}` },
    device: { reference: `Device/${patient}-watch` },
    identifier: [{ system: 'urn:vigil:bench', value: `${patient}-${i}` }],
    effectiveDateTime: new Date(time).toISOString(),
    valueQuantity: { value: Math.round((v.base + (Math.random() - 0.5) * v.spread) * 10) / 10, unit: v.unit, system: 'http://unitsofmeasure.org', code: v.unit },
  };
}

export async function main(args: string[]): Promise<void> {
  const opt = (name: string, fallback: number): number => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const totalObservations = opt('observations', 1_000_000);
  const patientCount = opt('patients', 1000);
  const heavyObservations = opt('heavy', 100_000);
  // --reuse keeps the database a previous run loaded (the load takes minutes) and measures again
  const reuse = args.includes('--reuse');
  loadDefinitions();
  const url = reuse ? databaseUrl('vigil_bench_rest') : await recreateDatabase('vigil_bench_rest');
  const server = await startServer(url, 8190);
  const fhir = `${server.base}/fhir/R4`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    console.log(`bench rest: ${fmt(totalObservations)} Observations for ${fmt(patientCount)} patients on PostgreSQL`);
    const patients: string[] = reuse ? (await client.query<{ id: string }>(`SELECT id FROM "Patient" WHERE content NOT LIKE '%"Heavy"%'`)).rows.map((r) => r.id) : [];
    for (let p = 0; p < patientCount && !reuse; p++) {
      const res = await http('POST', `${fhir}/Patient`, JSON.stringify({ resourceType: 'Patient', name: [{ family: `Bench${p}` }] }));
      patients.push(JSON.parse(res.body).id);
    }

    // Setup: bulk-load through the store's own row builder (same columns and index values as the API writes).
    const columns = tableColumns('Observation');
    const perPatient = Math.ceil(totalObservations / patientCount);
    const now = Date.now();
    const copyRows: string[] = [];
    const ids: string[] = [];
    const t0 = performance.now();
    const batch: unknown[][] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const params: unknown[] = [];
      const values = batch.map((row) => `(${row.map((v) => `$${params.push(v)}`).join(',')})`);
      const history = batch.map((row) => `(${[row[0], row[1], row[2], false, row[4]].map((v) => `$${params.push(v)}`).join(',')})`);
      await client.query(
        `WITH h AS (INSERT INTO ${quote(historyTable('Observation'))} (id, version_id, last_updated, deleted, content) VALUES ${history.join(',')}) ` +
          `INSERT INTO "Observation" (${columns.map((c) => quote(c.name)).join(',')}) VALUES ${values.join(',')}`,
        params,
      );
      batch.length = 0;
    };
    let loaded = 0;
    if (reuse) {
      ids.push(...(await client.query<{ id: string }>('SELECT id FROM "Observation" TABLESAMPLE SYSTEM (5) LIMIT 100000')).rows.map((r) => r.id));
      const sample = await client.query<{ content: string }>('SELECT content FROM "Observation" LIMIT 200000');
      for (const r of sample.rows) copyRows.push(`${randomUUID()}\t${r.content.replaceAll('\\', '\\\\')}\n`);
      loaded = totalObservations;
    }
    for (let p = 0; p < patientCount && loaded < totalObservations; p++) {
      for (let i = 0; i < perPatient && loaded < totalObservations; i++, loaded++) {
        const obs = observation(patients[p], i, now - (perPatient - i) * 60_000);
        const id = newResourceId();
        const stored = { ...obs, id, meta: { versionId: '1', lastUpdated: new Date().toISOString() } };
        const content = JSON.stringify(stored);
        if (copyRows.length < 200_000) copyRows.push(`${id}\t${content.replaceAll('\\', '\\\\')}\n`);
        // a uniform sample of the whole load (reservoir), so reads reach all of the table and its id index
        if (ids.length < 100_000) ids.push(id);
        else if (Math.random() * (loaded + 1) < 100_000) ids[Math.floor(Math.random() * 100_000)] = id;
        batch.push(rowParams(stored, content, server.base));
        if (batch.length === 100) await flush();
      }
      if (p % 100 === 99) process.stdout.write(`  loaded ${fmt(loaded)} (${fmt(loaded / ((performance.now() - t0) / 1000))}/s)\r`);
    }
    await flush();
    if (!reuse) console.log(`  setup: loaded ${fmt(loaded)} Observations in ${fmt((performance.now() - t0) / 1000, 1)} s`);
    // One heavily monitored patient (a year of readings) for $lastn.
    const heavyId = reuse
      ? (await client.query<{ id: string }>(`SELECT id FROM "Patient" WHERE content LIKE '%"Heavy"%'`)).rows[0].id
      : (JSON.parse((await http('POST', `${fhir}/Patient`, JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Heavy' }] }))).body) as { id: string }).id;
    for (let i = 0; i < heavyObservations && !reuse; i++) {
      const obs = observation(heavyId, i, now - (heavyObservations - i) * 300_000);
      const stored = { ...obs, id: newResourceId(), meta: { versionId: '1', lastUpdated: new Date().toISOString() } };
      batch.push(rowParams(stored, JSON.stringify(stored), server.base));
      if (batch.length === 100) await flush();
    }
    await flush();
    await client.query('VACUUM ANALYZE "Observation"');

    // Ceiling: raw COPY of the same JSON rows into a bare table.
    await client.query('DROP TABLE IF EXISTS raw_copy');
    await client.query('CREATE UNLOGGED TABLE raw_copy (id text, content text)');
    const c0 = performance.now();
    await pipeline(Readable.from(copyRows), client.query(copyFrom('COPY raw_copy (id, content) FROM STDIN')));
    const copyRate = copyRows.length / ((performance.now() - c0) / 1000);

    // Vigil's own CPU per request beside the rates, which swing with whatever else the two cores run
    const cpu0 = await serverCpuSeconds(server.base);
    const creates = await load(20_000, 32, async (i) => {
      const p = patients[i % patients.length];
      const res = await http('POST', `${fhir}/Observation`, JSON.stringify(observation(p, perPatient + i, now)));
      if (res.status !== 201) throw new Error(`create: ${res.status} ${res.body}`);
    });
    const cpu1 = await serverCpuSeconds(server.base);
    const reads = await load(20_000, 32, async (i) => {
      const res = await http('GET', `${fhir}/Observation/${ids[(i * 7919) % ids.length]}`);
      if (res.status !== 200) throw new Error(`read: ${res.status}`);
    });
    const cpu2 = await serverCpuSeconds(server.base);
    const perRequest = (seconds: number) => `${fmt((seconds / 20_000) * 1e6)} µs of Vigil CPU each`;
    const hotPath = (i: number): string => {
      const p = patients[(i * 31) % patients.length];
      const code = VITALS[i % VITALS.length].code;
      const since = new Date(now - 7 * 86_400_000).toISOString().slice(0, 10);
      return `${fhir}/Observation?patient=Patient/${p}&code=http://loinc.org|${code}&date=ge${since}&_sort=-date&_count=50`;
    };
    let matched = 0;
    const searches1 = await load(2000, 1, async (i) => {
      const res = await http('GET', hotPath(i));
      if (res.status !== 200) throw new Error(`search: ${res.status} ${res.body}`);
      matched += (JSON.parse(res.body).entry ?? []).length;
    });
    const searches8 = await load(4000, 8, async (i) => {
      const res = await http('GET', hotPath(i + 2000));
      if (res.status !== 200) throw new Error(`search: ${res.status}`);
    });
    const lastn = await load(2000, 1, async () => {
      const res = await http('GET', `${fhir}/Observation/$lastn?patient=Patient/${heavyId}&max=1`);
      if (res.status !== 200) throw new Error(`$lastn: ${res.status} ${res.body}`);
    });
    // a bot's window on a long history: the last hour of one measure, and $lastn within it
    const hour = (): string => new Date(Date.now() - 3_600_000).toISOString();
    const windowSearch = await load(2000, 1, async (i) => {
      const res = await http('GET', `${fhir}/Observation?patient=Patient/${heavyId}&code=http://loinc.org|${VITALS[i % VITALS.length].code}&date=ge${hour()}&_sort=-date&_count=50`);
      if (res.status !== 200) throw new Error(`window search: ${res.status} ${res.body}`);
    });
    const windowLastn = await load(2000, 1, async () => {
      const res = await http('GET', `${fhir}/Observation/$lastn?patient=Patient/${heavyId}&date=ge${hour()}&max=5`);
      if (res.status !== 200) throw new Error(`$lastn: ${res.status} ${res.body}`);
    });
    const l1 = percentiles(searches1.latencies);
    const l8 = percentiles(searches8.latencies);
    const ms = (n: number): string => `${fmt(n, 2)} ms`;
    console.log('');
    console.log(`raw PostgreSQL COPY (same JSON rows, ${fmt(copyRows.length)}): ${fmt(copyRate)} rows/s   <- ceiling`);
    console.log(`create (POST /Observation, 32 concurrent):       ${fmt(creates.perSecond)} /s   p50 ${ms(percentiles(creates.latencies).p50)} p99 ${ms(percentiles(creates.latencies).p99)}   ${perRequest(cpu1 - cpu0)}`);
    console.log(`read by id (GET, 32 concurrent):                 ${fmt(reads.perSecond)} /s   p50 ${ms(percentiles(reads.latencies).p50)} p99 ${ms(percentiles(reads.latencies).p99)}   ${perRequest(cpu2 - cpu1)}`);
    console.log(`hot-path search, _count=50, 1 client:            p50 ${ms(l1.p50)} p95 ${ms(l1.p95)} p99 ${ms(l1.p99)} (${fmt(searches1.perSecond)}/s, ${fmt(matched / 2000, 1)} matches/page)`);
    console.log(`hot-path search, _count=50, 8 clients:           p50 ${ms(l8.p50)} p95 ${ms(l8.p95)} p99 ${ms(l8.p99)} (${fmt(searches8.perSecond)}/s)`);
    const ln = percentiles(lastn.latencies);
    console.log(`$lastn max=1, one patient with ${fmt(heavyObservations)} Observations: p50 ${ms(ln.p50)} p95 ${ms(ln.p95)} p99 ${ms(ln.p99)}`);
    const ws = percentiles(windowSearch.latencies);
    console.log(`last hour of one code, _count=50, same patient:  p50 ${ms(ws.p50)} p95 ${ms(ws.p95)} p99 ${ms(ws.p99)}`);
    const wl = percentiles(windowLastn.latencies);
    console.log(`$lastn max=5 within the last hour, same patient: p50 ${ms(wl.p50)} p95 ${ms(wl.p95)} p99 ${ms(wl.p99)}`);
  } finally {
    await client.end();
    await server.stop();
  }
}
