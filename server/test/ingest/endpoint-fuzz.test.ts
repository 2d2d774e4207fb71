import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DRIVERS, authHeader, request, useServer } from '../support.ts';
import { prng } from './helpers.ts';

/**
 * `POST /ingest/{mapping}` against a real server with random and mutated bodies, headers and paths:
 * never a 5xx, an answer for every request, and the good readings of a mixed batch stored, each
 * exactly once, however bad their neighbours.
 */

const REQUESTS = 250;
const MAX_BODY = 64 * 1024;
const DEVICE = 'fuzz-dev-1';

const random = prng(0xf022);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (n: number) => Math.floor(random() * n);

const ODD: unknown[] = [
  null, true, false, 0, -1, 1e308, -1e308, 2 ** 63, '', ' ', 'NaN', 'Infinity', '72', '0x1F', '1e309',
  '2024-05-01', '2024-05-01T10:00:00', '2999-01-01T00:00:00Z', '2024-02-30T10:00:00Z', '\u0000', '\uFFFF\uD800',
  'x'.repeat(5000), [], {}, [[[]]], { value: { value: 1 } }, '__proto__', 'constructor', 'heart-rate', '/min', 'Device/x',
];
const KEYS = ['deviceId', 'patientId', 'timestamp', 'type', 'value', 'unit', '__proto__', 'constructor', 'readings', 'x'];

function oddValue(depth = 0): unknown {
  const r = random();
  if (depth > 3 || r < 0.6) return pick(ODD);
  if (r < 0.8) return Array.from({ length: int(4) }, () => oddValue(depth + 1));
  return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(KEYS), oddValue(depth + 1)]));
}

let badClock = Date.UTC(2024, 0, 1);
/** Readings no good reading can collide with: unknown devices, another stretch of time. */
function badReading(): Record<string, unknown> {
  const reading: Record<string, unknown> = {
    deviceId: pick(['fuzz-unknown', 'fuzz-unknown-2', '', 'x'.repeat(300)]),
    timestamp: new Date((badClock += 1000)).toISOString(),
    type: pick(['heart-rate', 'spo2', 'systolic', 'nope', 'steps']),
    value: 70,
    unit: '/min',
  };
  for (let i = int(3); i >= 0; i--) reading[pick(KEYS)] = oddValue();
  return reading;
}

/** Nested arrays and objects as text: deeper than JSON.stringify (or the test itself) could build. */
function deep(depth: number): string {
  const open: string[] = [];
  const close: string[] = [];
  for (let i = 0; i < depth; i++) {
    const array = random() < 0.5;
    open.push(array ? '[' : '{"nested":');
    close.push(array ? ']' : '}');
  }
  return `${open.join('')}${JSON.stringify({ deviceId: DEVICE })}${close.reverse().join('')}`;
}

/** A body and what it holds: the good readings that must be stored. */
interface Case {
  path: string;
  body: string;
  contentType?: string;
  good: { timestamp: string; value: number }[];
}

let goodClock = Date.now() - 2 * 24 * 3600_000;
function goodReading() {
  const reading = { deviceId: DEVICE, timestamp: new Date((goodClock += 1000)).toISOString(), type: 'heart-rate', value: 30 + int(170), unit: '/min' };
  return reading;
}

function garble(text: string): string {
  const chars = [...text];
  for (let i = 0; i < 1 + int(4); i++) {
    const at = int(chars.length);
    const r = random();
    if (r < 0.3) chars.splice(at, 1);
    else if (r < 0.6) chars.splice(at, 0, pick(['{', '}', '[', ']', '"', ',', ':', '\\', '\u0000', 'é', '\uD800']));
    else chars.length = at;
  }
  return chars.join('');
}

function fuzzCase(): Case {
  const r = random();
  const path = '/ingest/vigil-generic';
  if (r < 0.35) {
    // the case that matters most: good readings mixed with bad ones, in any order
    const good = Array.from({ length: 1 + int(5) }, goodReading);
    const messages: unknown[] = [...good, ...Array.from({ length: int(8) }, () => (random() < 0.7 ? badReading() : oddValue()))];
    for (let i = messages.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [messages[i], messages[j]] = [messages[j], messages[i]];
    }
    return { path, body: JSON.stringify(messages), good, contentType: pick(['application/json', 'text/plain', undefined]) };
  }
  if (r < 0.5) return { path, body: garble(JSON.stringify([badReading(), badReading()])), good: [] };
  if (r < 0.6) return { path, body: JSON.stringify(oddValue()) ?? 'undefined', good: [] };
  if (r < 0.66) {
    const text = deep(pick([40, 1000, 5000]));
    return { path, body: random() < 0.7 ? text : text.slice(0, -1), good: [] };
  }
  if (r < 0.68) return { path, body: `${'['.repeat(30_000)}${']'.repeat(30_000)}`, good: [] };
  if (r < 0.72) return { path, body: JSON.stringify(Array.from({ length: 2000 }, badReading)), good: [] };
  if (r < 0.75) return { path, body: JSON.stringify([{ ...badReading(), note: 'x'.repeat(MAX_BODY) }]), good: [] };
  if (r < 0.8) return { path, body: Buffer.from(Array.from({ length: int(300) }, () => int(256))).toString('latin1'), good: [], contentType: 'application/octet-stream' };
  if (r < 0.85) return { path, body: JSON.stringify([badReading()]), good: [], contentType: pick(['application/json; charset=utf-16', 'text/plain; charset=koi8-r', 'application/json; charset=nope']) };
  if (r < 0.9) return { path, body: pick(['', ' ', 'null', '[]', '{}', '0', '"text"', '\u0000']), good: [] };
  const mapping = pick(['no-such-mapping', '%ZZ', '%E0%A4%A', '%00', 'a%2Fb', 'x'.repeat(2000), '__proto__', 'vigil-generic%20']);
  return { path: `/ingest/${mapping}`, body: JSON.stringify([badReading()]), good: [] };
}

for (const driver of DRIVERS) {
  describe(`/ingest endpoint fuzz (${driver})`, () => {
    const s = useServer(driver, { VIGIL_MAX_BODY_BYTES: String(MAX_BODY) });

    it(`${REQUESTS} random and mutated requests: no 5xx, every good reading of a mixed batch stored once`, { timeout: 600_000 }, async () => {
      const patient = (await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient' })).body;
      await request('POST', `${s.fhir}/Device`, { resourceType: 'Device', identifier: [{ system: 'urn:test', value: DEVICE }], patient: { reference: `Patient/${patient.id}` } });
      const expected = new Map<string, number>();
      const statuses = new Map<number, number>();
      for (let i = 0; i < REQUESTS; i++) {
        const c = fuzzCase();
        const res = await fetch(`${s.base}${c.path}`, {
          method: 'POST',
          headers: { ...authHeader(), ...(c.contentType ? { 'content-type': c.contentType } : {}) },
          body: c.body,
        });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const what = `request ${i}: ${c.path} ${c.body.slice(0, 200)} → ${res.status} ${text.slice(0, 300)}`;
        assert.ok(res.status < 500, what);
        const body = JSON.parse(text);
        if (res.status !== 200) {
          assert.equal(body.resourceType, 'OperationOutcome', what);
          continue;
        }
        const messages = JSON.parse(c.body);
        assert.equal(body.results.length, Array.isArray(messages) ? messages.length : 1, what);
        for (const result of body.results) assert.ok(['ok', 'rejected'].includes(result.status), what);
        const byTimestamp = new Map((Array.isArray(messages) ? messages : [messages]).map((m: any, k: number) => [m?.deviceId === DEVICE ? m.timestamp : undefined, body.results[k]]));
        for (const g of c.good) {
          assert.equal(byTimestamp.get(g.timestamp)?.status, 'ok', `a good reading in ${what}`);
          expected.set(new Date(g.timestamp).toISOString(), g.value);
        }
      }
      assert.ok(expected.size > 100, `good readings sent: ${expected.size}`);
      assert.ok(statuses.size >= 4, `the fuzz reached several outcomes: ${JSON.stringify([...statuses])}`);
      assert.equal((await fetch(`${s.base}/healthz`)).status, 200);

      const stored = new Map<string, number[]>();
      let url: string | undefined = `${s.fhir}/Observation?patient=Patient/${patient.id}&_count=1000`;
      while (url) {
        const page: any = (await request('GET', url)).body;
        for (const e of page.entry ?? []) {
          const at = new Date(e.resource.effectiveDateTime).toISOString();
          stored.set(at, [...(stored.get(at) ?? []), e.resource.valueQuantity.value]);
        }
        url = page.link?.find((l: any) => l.relation === 'next')?.url;
      }
      assert.equal(stored.size, expected.size);
      for (const [at, value] of expected) assert.deepEqual(stored.get(at), [value], at);
    });
  });
}
