import { parseArgs } from 'node:util';
import pg from 'pg';
import type { Bundle, BundleEntry, Observation } from '@medplum/fhirtypes';
import { accessibilityViolations, launchBrowser, signIn } from '../app/test/browser.ts';
import { buildAppIfStale } from '../scripts/build-app.ts';
import { fmt, http, percentiles, rawCopyRate, recreateDatabase, startServer } from './support.ts';

/**
 * `npm run bench -- app [--patients 100] [--rate 5] [--seconds 30]`: the clinician's ward view in
 * Chromium against a Vigil on PostgreSQL (all roles in one process, as a small site runs it).
 * Reports the dashboard's first load (navigation → every tile drawn) and, while every patient
 * streams `rate` readings/s, frame intervals, long tasks and reading → tile latency. Ends with the
 * raw PostgreSQL COPY of the Observation rows written, the ceiling of the writes behind the view.
 */
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const PASSWORD = 'bench-password-123';
const VITALS = [
  { code: '8867-4', unit: '/min', value: () => 60 + Math.random() * 20 },
  { code: '2708-6', unit: '%', value: () => 96 + Math.random() * 3 },
  { code: '9279-1', unit: '/min', value: () => 12 + Math.random() * 6 },
  { code: '8310-5', unit: 'Cel', value: () => 36.4 + Math.random() * 0.6 },
];

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { patients: { type: 'string', default: '100' }, rate: { type: 'string', default: '5' }, seconds: { type: 'string', default: '30' }, port: { type: 'string', default: '8199' } } });
  const patients = Number(values.patients);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  buildAppIfStale();
  const url = await recreateDatabase('vigil_bench_app');
  // the app's registered redirect is under the base URL, so it must be the address the browser uses
  const server = await startServer(url, Number(values.port), { VIGIL_ROLE: 'all', VIGIL_BASE_URL: `http://127.0.0.1:${values.port}` });
  const fhir = `${server.base}/fhir/R4`;
  const browser = await launchBrowser();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    console.log(`seeding ${patients} patients on one clinician's care teams…`);
    const ids = Array.from({ length: patients }, (_, i) => `bench-p${i}`);
    await post(fhir, transaction([
      { resourceType: 'Practitioner', id: 'bench-clinician', name: [{ family: 'Bench', given: ['Clinician'] }] },
      ...ids.flatMap((id, i) => [
        { resourceType: 'Patient', id, name: [{ family: `Patient ${i}`, given: ['Bench'] }], birthDate: '1950-01-01' },
        { resourceType: 'CareTeam', id: `team-${id}`, status: 'active', name: `Ward ${1 + (i % 4)}`, subject: { reference: `Patient/${id}` }, participant: [{ member: { reference: 'Practitioner/bench-clinician' } }] },
      ]),
    ] as BundleEntry['resource'][], 'PUT'));
    await post(fhir, transaction(ids.flatMap((id) => readings(id, new Date().toISOString())), 'POST'));
    const user = await http('POST', `${server.base}/admin/users`, JSON.stringify({ username: 'bench@vigil', password: PASSWORD, fhirUser: 'Practitioner/bench-clinician' }));
    if (user.status !== 201) throw new Error(`creating the user: ${user.status} ${user.body}`);

    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    await signIn(page, server.base, 'bench@vigil', PASSWORD);
    const loads: number[] = [];
    for (let i = 0; i < 5; i++) {
      await page.goto(`${server.base}/`);
      await page.waitForFunction((n) => document.querySelectorAll('article').length >= n, patients, { timeout: 60_000 });
      loads.push(await page.evaluate(() => performance.now()));
    }
    await page.locator('[data-live="live"]').waitFor({ timeout: 30_000 });
    const violations = await accessibilityViolations(page);

    // frame intervals and long tasks while the ward streams
    await page.evaluate(() => {
      const w = window as unknown as { frames_: number[]; long_: number[] };
      w.frames_ = [];
      w.long_ = [];
      let last = performance.now();
      const tick = (t: number) => {
        w.frames_.push(t - last);
        last = t;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
      new PerformanceObserver((list) => list.getEntries().forEach((e) => w.long_.push(e.duration))).observe({ type: 'longtask', buffered: false });
    });
    console.log(`streaming ${fmt(patients * rate)} readings/s (${patients} patients × ${rate}/s) for ${seconds} s…`);
    const latencies: number[] = [];
    const sent = { readings: 0, failed: 0 };
    const stopAt = Date.now() + seconds * 1000;
    let round = 0;
    const marker = async (): Promise<void> => {
      // one patient's pulse set to a value no simulated reading takes; time until its tile shows it
      const value = 150 + (round % 40);
      const t0 = Date.now();
      await post(fhir, transaction([reading('bench-p0', '8867-4', '/min', value, new Date().toISOString())], 'POST'));
      await page.getByRole('article', { name: /Bench Patient 0\b/ }).getByText(`${value} /min`, { exact: true }).waitFor({ timeout: 10_000 });
      latencies.push(Date.now() - t0);
    };
    // A round's batch goes out on schedule whether or not earlier ones were answered (up to
    // MAX_IN_FLIGHT), and the markers run beside it: a slow answer must not slow the stream.
    const inFlight = new Set<Promise<void>>();
    const markers: Promise<void>[] = [];
    while (Date.now() < stopAt) {
      const t0 = Date.now();
      const at = new Date().toISOString();
      const batch = ids.map((id, i) => {
        const v = VITALS[(round + i) % VITALS.length];
        return reading(id, v.code, v.unit, Number(v.value().toFixed(1)), at);
      });
      if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      const sending = http('POST', fhir, JSON.stringify(transaction(batch, 'POST', 'batch'))).then((res) => {
        if (res.status === 200) sent.readings += batch.length;
        else sent.failed += batch.length;
      });
      inFlight.add(sending);
      void sending.finally(() => inFlight.delete(sending));
      if (round % Math.max(1, rate * 2) === 0 && markers.length === latencies.length) {
        markers.push(marker().catch(() => {
          latencies.push(Number.POSITIVE_INFINITY);
        }));
      }
      round++;
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 / rate - (Date.now() - t0))));
    }
    await Promise.all([...inFlight, ...markers]);
    const { frames, long } = await page.evaluate(() => {
      const w = window as unknown as { frames_: number[]; long_: number[] };
      return { frames: w.frames_.slice(1), long: w.long_ };
    });
    const f = percentiles(frames);
    const l = percentiles(latencies);
    const copy = await rawCopyRate(client);
    const achieved = sent.readings / seconds;
    console.log('');
    console.log(`raw PostgreSQL COPY (same Observation rows, ${fmt(copy.rows)}): ${fmt(copy.perSecond)} rows/s   <- ceiling`);
    console.log(`writes behind the view: ${fmt(achieved)} readings/s committed (${fmt((achieved / copy.perSecond) * 100, 2)}% of COPY), ${fmt(sent.failed)} failed`);
    console.log(`dashboard first load (${patients} tiles drawn, navigation start →): median ${fmt(percentiles(loads).p50)} ms, max ${fmt(Math.max(...loads))} ms`);
    console.log(`frames while streaming: ${fmt(frames.length)} (${fmt(frames.length / seconds, 1)}/s); interval p50 ${fmt(f.p50, 1)} ms p95 ${fmt(f.p95, 1)} ms p99 ${fmt(f.p99, 1)} ms, max ${fmt(Math.max(...frames), 1)} ms; frames over 50 ms: ${frames.filter((x) => x > 50).length}`);
    console.log(`long tasks (>50 ms): ${long.length}, total ${fmt(long.reduce((a, b) => a + b, 0))} ms over ${seconds} s`);
    console.log(`reading committed → tile shows it: p50 ${fmt(l.p50)} ms p95 ${fmt(l.p95)} ms (${latencies.length} samples)`);
    console.log(`axe-core WCAG 2.1 AA violations on the busy dashboard: ${violations.length}${violations.length ? ` (${violations.join('; ')})` : ''}`);
  } finally {
    await browser.close();
    await client.end();
    await server.stop();
  }
}

/** Batches of readings awaiting their answer at once. */
const MAX_IN_FLIGHT = 8;

function reading(patient: string, code: string, unit: string, value: number, at: string): Observation {
  return {
    resourceType: 'Observation', status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: LOINC, code }] }, subject: { reference: `Patient/${patient}` }, effectiveDateTime: at,
    valueQuantity: { value, unit, system: UCUM, code: unit },
  };
}

const readings = (patient: string, at: string): Observation[] => VITALS.map((v) => reading(patient, v.code, v.unit, Number(v.value().toFixed(1)), at));

function transaction(resources: BundleEntry['resource'][], method: 'PUT' | 'POST', type: Bundle['type'] = 'transaction'): Bundle {
  return {
    resourceType: 'Bundle', type,
    entry: resources.map((resource) => ({
      resource,
      request: { method, url: method === 'PUT' ? `${resource?.resourceType}/${resource?.id}` : (resource?.resourceType as string) },
    })),
  };
}

async function post(fhir: string, bundle: Bundle): Promise<void> {
  const res = await http('POST', fhir, JSON.stringify(bundle));
  if (res.status !== 200) throw new Error(`${bundle.type}: ${res.status} ${res.body.slice(0, 500)}`);
}
