import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { DRIVERS, request, useServer, type FhirResponse, type TestServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const UCUM = 'http://unitsofmeasure.org';
const STATS = 'http://terminology.hl7.org/CodeSystem/observation-statistics';
const VITALS = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] };
const LAB = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] };

const HR = { system: LOINC, code: '8867-4' };
const WEIGHT = { system: LOINC, code: '29463-7' };
const GLUCOSE = { system: LOINC, code: '2345-7' };
const SYSTOLIC = { system: LOINC, code: '8480-6' };
const DIASTOLIC = { system: LOINC, code: '8462-4' };
const BP_PANEL = { system: LOINC, code: '85354-9' };
const TEMP = { system: LOINC, code: '8310-5' };

type Json = Record<string, any>;

/** An Observation; `at` is the effective time, `q` a value with a UCUM unit. */
function obs(id: string, patient: string, code: Json, at: string | undefined, extra: Json = {}): Resource {
  return {
    resourceType: 'Observation', id, status: 'final', code, subject: { reference: `Patient/${patient}` },
    ...(at ? { effectiveDateTime: at } : {}), ...extra,
  } as Resource;
}
const q = (value: number, code: string) => ({ valueQuantity: { value, unit: code, system: UCUM, code } });
const cc = (...codings: Json[]) => ({ coding: codings });

/** Stores resources with their ids through one transaction Bundle. */
async function load(s: TestServer, resources: Resource[]): Promise<void> {
  const bundle = {
    resourceType: 'Bundle', type: 'transaction',
    entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })),
  };
  const res = await request('POST', s.fhir, bundle);
  assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 2000));
}

async function ok(s: TestServer, path: string, body?: unknown): Promise<Json> {
  const res = await request(body === undefined ? 'GET' : 'POST', `${s.fhir}/${path}`, body);
  assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
  return res.body;
}

async function badRequest(s: TestServer, path: string, parameter: string, status = 400): Promise<void> {
  const res = await request('GET', `${s.fhir}/${path}`);
  assert.equal(res.status, status, `${path}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.resourceType, 'OperationOutcome');
  assert.deepEqual(res.body.issue[0].expression, [parameter], path);
}

const ids = (bundle: Json): string[] => bundle.entry.map((e: Json) => e.resource.id);

for (const driver of DRIVERS) {
  describe(`Monitoring operations (${driver})`, () => {
    const s = useServer(driver);

    describe('Observation/$lastn', () => {
      before(async () => {
        await load(s, [
          { resourceType: 'Patient', id: 'lp' } as Resource,
          { resourceType: 'Patient', id: 'lp-other' } as Resource,
          obs('hr1', 'lp', cc(HR), '2024-01-01T08:00:00Z', { category: [VITALS], ...q(60, '/min') }),
          obs('hr2', 'lp', cc(HR), '2024-01-02T08:00:00Z', { category: [VITALS], ...q(62, '/min') }),
          obs('hr3', 'lp', cc(HR), '2024-01-03T08:00:00Z', { category: [VITALS], ...q(64, '/min') }),
          // a translation joins the group; a coding met only through it joins it too (transitively)
          obs('hr4', 'lp', cc(HR, { system: SNOMED, code: '364075005' }), '2024-01-04T08:00:00Z', { category: [VITALS] }),
          obs('hr0', 'lp', cc({ system: SNOMED, code: '364075005' }), '2024-01-05T08:00:00Z', { category: [VITALS] }),
          obs('hr-eie', 'lp', cc(HR), '2023-12-01T08:00:00Z', { status: 'entered-in-error', category: [VITALS] }),
          obs('hr-undated', 'lp', cc(HR), undefined, { category: [VITALS] }),
          obs('w1', 'lp', cc(WEIGHT), '2024-01-01T09:00:00Z', { category: [VITALS], ...q(80, 'kg') }),
          obs('w2', 'lp', cc(WEIGHT), '2024-01-03T09:00:00Z', { category: [VITALS], ...q(81, 'kg') }),
          obs('w3', 'lp', cc(WEIGHT), '2024-01-03T09:00:00Z', { category: [VITALS], ...q(81.5, 'kg') }),
          obs('g1', 'lp', cc(GLUCOSE), '2023-06-01', { category: [LAB] }),
          obs('g2', 'lp', cc(GLUCOSE), '2023-07-01', { category: [LAB] }),
          obs('m1', 'lp', { text: 'Mood' }, '2024-01-01T10:00:00Z'),
          obs('m2', 'lp', { text: 'Mood' }, '2024-01-02T10:00:00Z'),
          obs('m3', 'lp', { text: 'mood' }, '2024-01-01T10:00:00Z'),
          obs('x-other', 'lp-other', cc(HR), '2024-02-01T08:00:00Z'),
          obs('x-deleted', 'lp', cc(HR), '2024-02-01T08:00:00Z'),
        ]);
        assert.equal((await request('DELETE', `${s.fhir}/Observation/x-deleted`)).status, 200);
      });

      it('returns the newest Observation of each code, grouped by code (translations joined), text codes by exact text', async () => {
        const bundle = await ok(s, 'Observation/$lastn?patient=lp');
        assert.equal(bundle.type, 'searchset');
        assert.equal(bundle.total, 6);
        // groups in code order: 2345-7, 29463-7 (a tie: both), 8867-4 (+ SNOMED); then "Mood", "mood"
        assert.deepEqual(ids(bundle), ['g2', 'w2', 'w3', 'hr0', 'm2', 'm3']);
        assert.ok(bundle.entry.every((e: Json) => e.search.mode === 'match' && e.fullUrl === `${s.fhir}/Observation/${e.resource.id}`));
      });

      it('returns up to max per group, newest first, ties included', async () => {
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp&max=3')), ['g2', 'g1', 'w2', 'w3', 'w1', 'hr0', 'hr4', 'hr3', 'm2', 'm1', 'm3']);
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp&max=2&code=8867-4')), ['hr4', 'hr3']);
        // text-only codes are found where a code filter does not name codes
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp&code:not=8867-4&category:missing=true')), ['m2', 'm3']);
        // entered-in-error is not filtered unless asked; undated Observations have no place in the order
        assert.deepEqual(ids(await ok(s, `Observation/$lastn?patient=lp&max=100&code=${LOINC}|8867-4`)), ['hr4', 'hr3', 'hr2', 'hr1', 'hr-eie']);
        assert.deepEqual(ids(await ok(s, `Observation/$lastn?patient=lp&max=100&code=${LOINC}|8867-4&status=final`)), ['hr4', 'hr3', 'hr2', 'hr1']);
      });

      it('filters with the ordinary search parameters: category, code, date, subject', async () => {
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=Patient/lp&category=vital-signs')), ['w2', 'w3', 'hr0']);
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?subject=Patient/lp&category=laboratory&max=5')), ['g2', 'g1']);
        assert.deepEqual(ids(await ok(s, `Observation/$lastn?subject=${s.fhir}/Patient/lp&code=29463-7,2345-7`)), ['g2', 'w2', 'w3']);
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp&date=lt2024-01-03&code=8867-4,29463-7&max=2')), ['w1', 'hr2', 'hr1']);
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp&date=ge2024-01-05&max=2')), ['hr0']);
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp-other')), ['x-other']);
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=nobody')), []);
        // a subject given as a bare id is not known to be a Patient: the codes are found by a scan
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?subject=lp&category=vital-signs')), ['w2', 'w3', 'hr0']);
      });

      it('answers for several subjects at once, each grouped on its own', async () => {
        // a ward overview: one request for every patient, the newest per code of each
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp,lp-other&category=vital-signs')), ['w2', 'w3', 'hr0']);
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=lp-other,lp,nobody&code=8867-4')), ['x-other', 'hr4']);
        assert.deepEqual(ids(await ok(s, `Observation/$lastn?subject=Patient/lp,Patient/lp-other&code=${LOINC}|8867-4&max=2`)), ['hr4', 'hr3', 'x-other']);
        const many = Array.from({ length: 501 }, (_, i) => `p${i}`).join(',');
        await badRequest(s, `Observation/$lastn?patient=${many}`, 'patient');
      });

      it('takes a Parameters body on POST', async () => {
        const body = { resourceType: 'Parameters', parameter: [{ name: 'patient', valueString: 'lp' }, { name: 'max', valuePositiveInt: 2 }, { name: 'category', valueString: 'vital-signs' }] };
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn', body)), ['w2', 'w3', 'hr0', 'hr4']);
      });

      it('rejects bad input with an OperationOutcome naming the parameter', async () => {
        await badRequest(s, 'Observation/$lastn?category=vital-signs', 'patient');
        await badRequest(s, 'Observation/$lastn?patient=lp&max=0', 'max');
        await badRequest(s, 'Observation/$lastn?patient=lp&max=two', 'max');
        await badRequest(s, 'Observation/$lastn?patient=lp&colour=red', 'colour');
        await badRequest(s, 'Observation/$lastn?patient=lp&date=yesterday', 'date');
        await badRequest(s, 'Observation/$lastn?patient=lp&_sort=date', '_sort');
        const post = await request('POST', `${s.fhir}/Observation/$lastn`, { resourceType: 'Patient' });
        assert.equal(post.status, 400);
      });

      it('stays correct with thousands of Observations for one patient', async () => {
        const codes = [HR, { system: LOINC, code: '9279-1' }, { system: LOINC, code: '59408-5' }, TEMP];
        const resources: Resource[] = [];
        for (let i = 0; i < 3000; i++) {
          // pseudo-random times with repeats, so that ties happen
          const minute = (i * 7919) % 2500;
          const at = new Date(Date.UTC(2024, 0, 1) + minute * 60_000).toISOString();
          resources.push(obs(`b${i}`, i % 10 === 9 ? 'bulk-other' : 'bulk', cc(codes[(i * 31) % 4]), at, q(i, '1')));
        }
        for (let i = 0; i < resources.length; i += 1000) await load(s, resources.slice(i, i + 1000));
        const expected = codes.toSorted((a, b) => (a.code < b.code ? -1 : 1)).flatMap((c) => {
          const mine = resources
            .filter((r: Json) => r.subject.reference === 'Patient/bulk' && r.code.coding[0].code === c.code)
            .sort((a: Json, b: Json) => b.effectiveDateTime.localeCompare(a.effectiveDateTime) || (a.id < b.id ? -1 : 1)) as Json[];
          const cutoff = mine[2].effectiveDateTime;
          return mine.filter((r) => r.effectiveDateTime >= cutoff).map((r) => r.id as string);
        });
        assert.ok(expected.length > 12, 'the data set has ties at the cut-off');
        assert.deepEqual(ids(await ok(s, 'Observation/$lastn?patient=bulk&max=3')), expected);
      });
    });

    describe('Observation/$stats', () => {
      const bp = (id: string, at: string, systolic: number, diastolic: number): Resource => obs(id, 'sp', cc(BP_PANEL), at, {
        component: [
          { code: cc(SYSTOLIC), valueQuantity: { value: systolic, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } },
          { code: cc(DIASTOLIC), valueQuantity: { value: diastolic, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } },
        ],
      });
      const hour = 3_600_000;
      before(async () => {
        await load(s, [
          { resourceType: 'Patient', id: 'sp' } as Resource,
          obs('s-hr1', 'sp', cc(HR), '2024-01-02T08:00:00Z', q(60, '/min')),
          obs('s-hr2', 'sp', cc(HR), '2024-01-05T08:00:00Z', q(90, '/min')),
          obs('s-hr3', 'sp', cc(HR), '2024-01-09T08:00:00Z', q(70, '/min')),
          obs('s-hr4', 'sp', cc(HR), '2024-01-20T08:00:00Z', q(80, '/min')),
          obs('s-hr-absent', 'sp', cc(HR), '2024-01-21T08:00:00Z', { dataAbsentReason: cc({ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error' }) }),
          obs('s-hr-eie', 'sp', cc(HR), '2024-01-22T08:00:00Z', { status: 'entered-in-error', ...q(500, '/min') }),
          obs('s-hr-feb', 'sp', cc(HR), '2024-02-01T08:00:00Z', q(100, '/min')),
          obs('s-hr-other', 'sp-other', cc(HR), '2024-01-10T08:00:00Z', q(200, '/min')),
          bp('s-bp1', '2024-01-01T07:00:00Z', 110, 70),
          bp('s-bp2', '2024-01-02T07:00:00Z', 150, 90),
          bp('s-bp3', '2024-01-03T07:00:00Z', 130, 80),
          bp('s-bp4', '2024-01-04T07:00:00Z', 120, 75),
          bp('s-bp5', '2024-01-05T07:00:00Z', 140, 85),
          // one systolic reading on its own
          obs('s-sys', 'sp', cc(SYSTOLIC), '2024-01-06T07:00:00Z', { valueQuantity: { value: 160, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } }),
          // mixed but commensurable units: compared in the newest one's (kg)
          obs('s-w1', 'sp', cc(WEIGHT), '2024-01-01T07:00:00Z', q(82, 'kg')),
          obs('s-w2', 'sp', cc(WEIGHT), '2024-01-02T07:00:00Z', q(81000, 'g')),
          obs('s-w3', 'sp', cc(WEIGHT), '2024-01-03T07:00:00Z', q(80, 'kg')),
          // units with an offset: Cel and [degF]
          obs('s-t1', 'sp', cc(TEMP), '2024-01-01T07:00:00Z', q(37, 'Cel')),
          obs('s-t2', 'sp', cc(TEMP), '2024-01-02T07:00:00Z', q(98.6, '[degF]')),
          obs('s-t3', 'sp', cc(TEMP), '2024-01-03T07:00:00Z', q(38, 'Cel')),
          obs('d-recent', 'dp', cc(HR), new Date(Date.now() - hour).toISOString(), q(50, '/min')),
          obs('d-old', 'dp', cc(HR), new Date(Date.now() - 3 * hour).toISOString(), q(52, '/min')),
        ]);
      });

      /** The statistics Observations of a $stats answer, by code, as statistic → value. */
      function statistics(body: Json): Map<string, Map<string, Json>> {
        assert.equal(body.resourceType, 'Parameters');
        const out = new Map<string, Map<string, Json>>();
        for (const p of body.parameter.filter((x: Json) => x.name === 'statistics')) {
          const o = p.resource;
          assert.equal(o.resourceType, 'Observation');
          assert.equal(o.status, 'final');
          const values = new Map<string, Json>();
          for (const c of o.component) {
            assert.equal(c.code.coding[0].system, STATS);
            values.set(c.code.coding[0].code, c.valueQuantity ?? (c.valueInteger !== undefined ? { integer: c.valueInteger } : { absent: c.dataAbsentReason.coding[0].code }));
          }
          out.set(`${o.code.coding[0].system}|${o.code.coding[0].code}`, values);
        }
        return out;
      }
      const value = (m: Map<string, Json> | undefined, stat: string): unknown => {
        const v = m?.get(stat);
        return v?.value ?? v?.integer ?? v?.absent;
      };

      it('computes every statistic exactly over a known data set', async () => {
        const all = 'average,maximum,minimum,count,total-count,median,std-dev,sum,variance,20-percent,80-percent,4-lower,4-upper,4-dev,5-1,5-2,5-3,5-4,skew,kurtosis';
        const body = await ok(s, `Observation/$stats?subject=Patient/sp&code=8867-4&system=${LOINC}&period=2024-01&statistic=${all}`);
        const result = statistics(body);
        assert.deepEqual([...result.keys()], [`${LOINC}|8867-4`]);
        const hr = result.get(`${LOINC}|8867-4`);
        // values 60, 70, 80, 90: the Feb reading, the entered-in-error one and the other patient's are out
        const expected: Record<string, unknown> = {
          average: 75, maximum: 90, minimum: 60, count: 4, 'total-count': 5, median: 75,
          'std-dev': Number(Math.sqrt(500 / 3).toPrecision(12)), sum: 300, variance: Number((500 / 3).toPrecision(12)),
          '20-percent': 66, '80-percent': 84, '4-lower': 67.5, '4-upper': 82.5, '4-dev': 7.5,
          '5-1': 66, '5-2': 72, '5-3': 78, '5-4': 84, skew: 0, kurtosis: -1.2,
        };
        for (const [stat, v] of Object.entries(expected)) assert.equal(value(hr, stat), v, stat);
        assert.deepEqual(hr?.get('average'), { value: 75, unit: '/min', system: UCUM, code: '/min' });
        assert.deepEqual(hr?.get('variance'), { value: expected.variance, unit: '(/min)^2' });
        assert.deepEqual(hr?.get('skew'), { value: 0 });
        const o = body.parameter[0].resource;
        assert.deepEqual(o.code, { coding: [HR] });
        assert.deepEqual(o.subject, { reference: 'Patient/sp' });
        assert.deepEqual(o.effectivePeriod, { start: '2024-01-01T00:00:00.000Z', end: '2024-02-01T00:00:00.000Z' });
        assert.deepEqual(o.component.map((c: Json) => c.code.coding[0].code), all.split(','));
      });

      it('expands a panel code into its component codes, and counts components for a component code', async () => {
        const panel = statistics(await ok(s, `Observation/$stats?patient=sp&coding=${LOINC}|85354-9&statistic=average,std-dev,median,count`));
        assert.deepEqual([...panel.keys()], [`${LOINC}|8462-4`, `${LOINC}|8480-6`]);
        const dia = panel.get(`${LOINC}|8462-4`);
        assert.equal(value(dia, 'average'), 80);
        assert.equal(value(dia, 'median'), 80);
        assert.equal(value(dia, 'std-dev'), Number(Math.sqrt(62.5).toPrecision(12)));
        assert.equal(value(dia, 'count'), 5);
        assert.deepEqual(dia?.get('average'), { value: 80, unit: 'mm[Hg]', system: UCUM, code: 'mm[Hg]' });
        const sys = panel.get(`${LOINC}|8480-6`);
        assert.equal(value(sys, 'average'), 130);
        assert.equal(value(sys, 'std-dev'), Number(Math.sqrt(250).toPrecision(12)));
        // asking for systolic itself takes the panels' components and the lone reading: 110…160
        const only = statistics(await ok(s, `Observation/$stats?subject=Patient/sp&code=8480-6&system=${LOINC}&statistic=count,maximum,average`));
        assert.deepEqual([...only.keys()], [`${LOINC}|8480-6`]);
        assert.equal(value(only.get(`${LOINC}|8480-6`), 'count'), 6);
        assert.equal(value(only.get(`${LOINC}|8480-6`), 'maximum'), 160);
        assert.equal(value(only.get(`${LOINC}|8480-6`), 'average'), 135);
      });

      it('compares commensurable units in the newest value\'s unit', async () => {
        const r = statistics(await ok(s, `Observation/$stats?subject=Patient/sp&code=29463-7,8310-5&system=${LOINC}&statistic=average,minimum,maximum,sum,std-dev,count`));
        assert.deepEqual([...r.keys()], [`${LOINC}|29463-7`, `${LOINC}|8310-5`]);
        const w = r.get(`${LOINC}|29463-7`);
        assert.deepEqual(w?.get('average'), { value: 81, unit: 'kg', system: UCUM, code: 'kg' });
        assert.deepEqual([value(w, 'minimum'), value(w, 'maximum'), value(w, 'sum'), value(w, 'std-dev'), value(w, 'count')], [80, 82, 243, 1, 3]);
        const t = r.get(`${LOINC}|8310-5`);
        assert.deepEqual(t?.get('average'), { value: Number((112 / 3).toPrecision(12)), unit: 'Cel', system: UCUM, code: 'Cel' });
        assert.deepEqual([value(t, 'minimum'), value(t, 'maximum'), value(t, 'sum'), value(t, 'count')], [37, 38, 112, 3]);
      });

      it('takes every code of the subject when none is given, and a duration in hours', async () => {
        const every = statistics(await ok(s, 'Observation/$stats?subject=Patient/sp&period=2024-01-01/2024-01-03&statistic=count'));
        // 2024-01-01 to the end of 2024-01-03: panels 1-3 and the first HR, weights and temperatures
        assert.deepEqual(
          [...every.entries()].map(([k, v]) => [k, value(v, 'count')]),
          [[`${LOINC}|29463-7`, 3], [`${LOINC}|8310-5`, 3], [`${LOINC}|8462-4`, 3], [`${LOINC}|8480-6`, 3], [`${LOINC}|8867-4`, 1]],
        );
        const recent = statistics(await ok(s, 'Observation/$stats?patient=dp&duration=2&statistic=average,count,std-dev'));
        const hr = recent.get(`${LOINC}|8867-4`);
        assert.deepEqual([value(hr, 'average'), value(hr, 'count'), value(hr, 'std-dev')], [50, 1, 'not-a-number']);
        const none = statistics(await ok(s, `Observation/$stats?patient=dp&duration=0.5&code=8867-4&system=${LOINC}&statistic=average,count`));
        assert.deepEqual([value(none.get(`${LOINC}|8867-4`), 'average'), value(none.get(`${LOINC}|8867-4`), 'count')], ['not-a-number', 0]);
      });

      it('includes the source Observations, newest first, up to limit', async () => {
        const base = `Observation/$stats?subject=Patient/sp&code=8867-4&system=${LOINC}&period=2024-01&statistic=count&include=true`;
        const sources = (b: Json): string[] => b.parameter.filter((p: Json) => p.name === 'source').map((p: Json) => p.resource.id);
        assert.deepEqual(sources(await ok(s, base)), ['s-hr4', 's-hr3', 's-hr2', 's-hr1']);
        assert.deepEqual(sources(await ok(s, `${base}&limit=2`)), ['s-hr4', 's-hr3']);
        assert.deepEqual(sources(await ok(s, base.replace('include=true', 'include=false'))), []);
      });

      it('takes a Parameters body on POST', async () => {
        const body = {
          resourceType: 'Parameters',
          parameter: [
            { name: 'subject', valueUri: 'Patient/sp' },
            { name: 'coding', valueCoding: HR },
            { name: 'period', valuePeriod: { start: '2024-01-01', end: '2024-01-31' } },
            { name: 'statistic', valueCode: 'average' },
            { name: 'statistic', valueCode: 'maximum' },
          ],
        };
        const r = statistics(await ok(s, 'Observation/$stats', body));
        assert.deepEqual([value(r.get(`${LOINC}|8867-4`), 'average'), value(r.get(`${LOINC}|8867-4`), 'maximum')], [75, 90]);
      });

      it('rejects bad input with an OperationOutcome naming the parameter', async () => {
        const q = `code=8867-4&system=${LOINC}&statistic=average`;
        await badRequest(s, `Observation/$stats?${q}`, 'subject');
        await badRequest(s, 'Observation/$stats?subject=Patient/sp&code=8867-4&statistic=average', 'system');
        await badRequest(s, 'Observation/$stats?subject=Patient/sp&code=8867-4&system=loinc&statistic=average', 'system');
        await badRequest(s, 'Observation/$stats?subject=Patient/sp&coding=8867-4&statistic=average', 'coding');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&code=8867-4&system=${LOINC}`, 'statistic');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&${q},mode`, 'statistic');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&${q}&duration=a`, 'duration');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&${q}&duration=-1`, 'duration');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&${q}&period=soon`, 'period');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&${q}&include=maybe`, 'include');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&${q}&include=true&limit=0`, 'limit');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&${q}&colour=red`, 'colour');
        await badRequest(s, `Observation/$stats?subject=Patient/sp&subject=Patient/x&${q}`, 'subject');
      });
    });

    describe('Patient/$everything', () => {
      let beforeUpdate = '';
      const compartment = [
        'Patient/ev', 'Patient/ev-linked', 'AllergyIntolerance/ev-allergy', 'Communication/ev-comm', 'Condition/ev-cond',
        'DocumentReference/ev-doc', 'Encounter/ev-enc', 'Flag/ev-flag', 'MedicationRequest/ev-medreq',
        'Observation/ev-obs1', 'Observation/ev-obs2',
      ];
      // Device is not in R4's Patient compartment: it comes as a referenced resource
      const referenced = ['Device/ev-device', 'Medication/ev-med', 'Organization/ev-org', 'Practitioner/ev-pr'];
      const matches = (b: Json): string[] => b.entry.filter((e: Json) => e.search.mode === 'match').map((e: Json) => `${e.resource.resourceType}/${e.resource.id}`);
      const includes = (b: Json): string[] => b.entry.filter((e: Json) => e.search.mode === 'include').map((e: Json) => `${e.resource.resourceType}/${e.resource.id}`);
      const subject = { reference: 'Patient/ev' };

      before(async () => {
        await load(s, [
          { resourceType: 'Patient', id: 'ev', managingOrganization: { reference: 'Organization/ev-org' } },
          { resourceType: 'Patient', id: 'ev-linked', link: [{ other: { reference: 'Patient/ev' }, type: 'seealso' }] },
          { resourceType: 'Patient', id: 'ev-stranger' },
          { resourceType: 'Practitioner', id: 'ev-pr' },
          { resourceType: 'Organization', id: 'ev-org' },
          { resourceType: 'Organization', id: 'ev-unreferenced' },
          { resourceType: 'Medication', id: 'ev-med' },
          obs('ev-obs1', 'ev', cc(HR), '2024-03-01T08:00:00Z', { performer: [{ reference: 'Practitioner/ev-pr' }], device: { reference: 'Device/ev-device' } }),
          obs('ev-obs2', 'ev', cc(WEIGHT), '2024-03-02T08:00:00Z', { hasMember: [{ reference: 'Observation/ev-stranger-obs' }] }),
          obs('ev-stranger-obs', 'ev-stranger', cc(HR), '2024-03-01T08:00:00Z'),
          obs('ev-deleted', 'ev', cc(HR), '2024-03-01T08:00:00Z'),
          { resourceType: 'Condition', id: 'ev-cond', subject, onsetDateTime: '2023-05-01' },
          { resourceType: 'Encounter', id: 'ev-enc', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject, period: { start: '2024-03-01T08:00:00Z', end: '2024-03-01T09:00:00Z' } },
          { resourceType: 'AllergyIntolerance', id: 'ev-allergy', patient: subject, clinicalStatus: cc({ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }) },
          { resourceType: 'Device', id: 'ev-device', patient: subject },
          { resourceType: 'Flag', id: 'ev-flag', status: 'active', code: { text: 'fall risk' }, subject },
          { resourceType: 'Communication', id: 'ev-comm', status: 'completed', subject, sent: '2024-02-01T10:00:00Z' },
          { resourceType: 'MedicationRequest', id: 'ev-medreq', status: 'active', intent: 'order', subject, medicationReference: { reference: 'Medication/ev-med' }, authoredOn: '2022-01-01' },
          { resourceType: 'DocumentReference', id: 'ev-doc', status: 'current', subject, content: [{ attachment: { contentType: 'text/plain', data: 'aGk=' } }] },
        ] as Resource[]);
        assert.equal((await request('DELETE', `${s.fhir}/Observation/ev-deleted`)).status, 200);
      });

      it('returns the Patient first, then its whole compartment, with the resources it references', async () => {
        const b = await ok(s, 'Patient/ev/$everything');
        assert.equal(b.type, 'searchset');
        const m = matches(b);
        assert.equal(m[0], 'Patient/ev');
        assert.deepEqual(m.toSorted(), compartment.toSorted());
        assert.deepEqual(includes(b).toSorted(), referenced);
        assert.equal(b.link.find((l: Json) => l.relation === 'next'), undefined);
        assert.equal(b.link.find((l: Json) => l.relation === 'self').url, `${s.fhir}/Patient/ev/$everything`);
      });

      it('pages with next links, each resource once', async () => {
        const seen: string[] = [];
        const included = new Set<string>();
        let url: string | undefined = `${s.fhir}/Patient/ev/$everything?_count=5`;
        let pages = 0;
        while (url) {
          const res: FhirResponse = await request('GET', url);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          const m = matches(res.body);
          assert.ok(m.length <= 5 && m.length > 0);
          seen.push(...m);
          for (const i of includes(res.body)) included.add(i);
          url = res.body.link.find((l: Json) => l.relation === 'next')?.url;
          pages++;
        }
        assert.equal(pages, 3);
        assert.equal(seen[0], 'Patient/ev');
        assert.deepEqual(seen.toSorted(), compartment.toSorted());
        assert.deepEqual([...included].sort(), referenced);
      });

      it('filters by _type, _since and care dates (start, end)', async () => {
        assert.deepEqual(matches(await ok(s, 'Patient/ev/$everything?_type=Observation,Condition')), ['Condition/ev-cond', 'Observation/ev-obs1', 'Observation/ev-obs2']);
        assert.deepEqual(includes(await ok(s, 'Patient/ev/$everything?_type=Observation&_type=Practitioner')), ['Practitioner/ev-pr']);
        // care dates: Condition onset 2023-05, MedicationRequest authored 2022, Communication sent 2024-02,
        // Encounter and Observations 2024-03; the others have none and stay
        const undated = ['Patient/ev', 'Patient/ev-linked', 'AllergyIntolerance/ev-allergy', 'DocumentReference/ev-doc', 'Flag/ev-flag'];
        assert.deepEqual(matches(await ok(s, 'Patient/ev/$everything?start=2024-01-01')).toSorted(),
          [...undated, 'Communication/ev-comm', 'Encounter/ev-enc', 'Observation/ev-obs1', 'Observation/ev-obs2'].toSorted());
        assert.deepEqual(matches(await ok(s, 'Patient/ev/$everything?end=2023-12')).toSorted(), [...undated, 'Condition/ev-cond', 'MedicationRequest/ev-medreq'].toSorted());
        assert.deepEqual(matches(await ok(s, 'Patient/ev/$everything?start=2024-02&end=2024-02')).toSorted(), [...undated, 'Communication/ev-comm'].toSorted());

        beforeUpdate = new Date().toISOString();
        await new Promise((r) => setTimeout(r, 5));
        const cond = await ok(s, 'Condition/ev-cond');
        assert.equal((await request('PUT', `${s.fhir}/Condition/ev-cond`, { ...cond, note: [{ text: 'updated' }] })).status, 200);
        assert.deepEqual(matches(await ok(s, `Patient/ev/$everything?_since=${encodeURIComponent(beforeUpdate)}`)), ['Condition/ev-cond']);
      });

      it('at type level returns every Patient and every compartment resource, paged', async () => {
        const seen: string[] = [];
        let url: string | undefined = `${s.fhir}/Patient/$everything?_count=500`;
        while (url) {
          const res: FhirResponse = await request('GET', url);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          seen.push(...matches(res.body));
          url = res.body.link.find((l: Json) => l.relation === 'next')?.url;
        }
        assert.equal(new Set(seen).size, seen.length);
        const patients = seen.filter((r) => r.startsWith('Patient/'));
        assert.deepEqual(seen.slice(0, patients.length), patients, 'Patients first');
        for (const r of [...compartment, 'Patient/ev-stranger', 'Observation/ev-stranger-obs', 'Observation/b0']) assert.ok(seen.includes(r), r);
        for (const r of ['Observation/ev-deleted', ...referenced]) assert.ok(!seen.includes(r), r);
      });

      it('takes a Parameters body on POST', async () => {
        const body = { resourceType: 'Parameters', parameter: [{ name: '_type', valueCode: 'Observation,Device' }] };
        const b = await ok(s, 'Patient/ev/$everything', body);
        assert.deepEqual(matches(b), ['Observation/ev-obs1', 'Observation/ev-obs2']);
        assert.deepEqual(includes(b), ['Device/ev-device']);
      });

      it('answers 404 for an unknown Patient, 410 for a deleted one, 400 for bad parameters', async () => {
        assert.equal((await request('GET', `${s.fhir}/Patient/nobody/$everything`)).status, 404);
        await load(s, [{ resourceType: 'Patient', id: 'ev-gone' } as Resource]);
        await request('DELETE', `${s.fhir}/Patient/ev-gone`);
        assert.equal((await request('GET', `${s.fhir}/Patient/ev-gone/$everything`)).status, 410);
        await badRequest(s, 'Patient/ev/$everything?_count=many', '_count');
        await badRequest(s, 'Patient/ev/$everything?_type=Dragon', '_type');
        await badRequest(s, 'Patient/ev/$everything?start=someday', 'start');
        await badRequest(s, 'Patient/ev/$everything?_cursor=abc', '_cursor');
        await badRequest(s, 'Patient/ev/$everything?_offset=10', '_offset');
      });
    });
  });
}
