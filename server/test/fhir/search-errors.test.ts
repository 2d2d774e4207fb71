import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, authHeader, request, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const LENIENT = { prefer: 'handling=lenient' };

const fixtures = [
  { resourceType: 'Patient', id: 'p1', name: [{ family: 'Quinn' }], gender: 'male', birthDate: '1960-01-01' },
  { resourceType: 'Patient', id: 'p2', name: [{ family: 'Rossi' }], gender: 'female', birthDate: '1970-01-01' },
  { resourceType: 'Patient', id: 'p3', name: [{ family: 'Quincy' }], gender: 'male' },
  {
    resourceType: 'Observation', id: 'o1', status: 'final', code: { coding: [{ system: LOINC, code: '8867-4' }] },
    subject: { reference: 'Patient/p1' }, effectiveDateTime: '2024-01-01T10:00:00Z', valueQuantity: { value: 72 },
  },
  { resourceType: 'RiskAssessment', id: 'r1', status: 'final', subject: { reference: 'Patient/p1' }, prediction: [{ probabilityDecimal: 0.5 }] },
  { resourceType: 'ValueSet', id: 'v1', status: 'active', url: 'http://acme.org/vs' },
];

const INJECTIONS = ["' OR 1=1 --", '"; DROP TABLE "Patient"; --', '\\', "'", '%', '_', '%25', '$1', "') OR ('1'='1", '*', 'Patient/p1\' OR \'1\'=\'1'];

/** One query per parameter type (and the special parameters); `$` is replaced by the injected value. */
const TEMPLATES = [
  'Patient?name=$', 'Patient?name:exact=$', 'Patient?name:contains=$', 'Patient?gender=$', 'Patient?gender:not=$',
  'Patient?identifier=$|$', 'Patient?gender:text=$', 'Patient?organization=$', 'Patient?general-practitioner:identifier=$',
  'Patient?birthdate=$', 'Patient?birthdate=ge$', 'RiskAssessment?probability=$', 'Observation?value-quantity=$',
  'Observation?value-quantity=72|$|$', 'ValueSet?url=$', 'ValueSet?url:below=$', 'ValueSet?url:above=$',
  'Observation?code-value-quantity=$$$', 'Observation?subject:Patient.name=$', 'Patient?_has:Observation:patient:code=$',
  'Patient?_id=$', 'Patient?_lastUpdated=$', 'Patient?_tag=$', 'Patient?_profile=$', 'Patient?_sort=$',
  'Patient?_include=$', 'Patient?_revinclude=Observation:$', 'Patient?_elements=$', 'Patient?_count=$',
  'Patient?_cursor=$', 'Patient?_summary=$', 'Patient?_total=$', 'Patient?$=x', 'Patient?name:$=x',
];

for (const driver of DRIVERS) {
  describe(`FHIR search: errors, lenient handling, injection, POST _search (${driver})`, () => {
    const s = useServer(driver);

    const get = (query: string, headers: Record<string, string> = {}) => request('GET', `${s.fhir}/${query}`, undefined, headers);
    const ids = (b: any): string[] => b.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
    /** A 400 OperationOutcome whose issue names `expression`. */
    async function expect400(query: string, expression: string): Promise<void> {
      const res = await get(query);
      assert.equal(res.status, 400, `${query}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.resourceType, 'OperationOutcome');
      assert.ok(res.body.issue.some((i: any) => i.severity === 'error' && i.expression?.includes(expression)), `${query}: ${JSON.stringify(res.body.issue)}`);
    }

    before(async () => {
      for (const r of fixtures) {
        const res = await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r);
        assert.equal(res.status, 201, JSON.stringify(res.body));
      }
    });

    it('an unknown parameter is a 400 naming it', async () => {
      await expect400('Patient?foo=bar', 'foo');
      await expect400('Patient?gender=male&name-x=1', 'name-x');
      await expect400('Patient?_text=x', '_text');
      await expect400('Observation?subject:Patient.foo=x', 'subject:Patient.foo');
      assert.equal((await get('NotAType?name=x')).status, 404);
    });

    it('malformed values and modifiers are 400s naming the parameter', async () => {
      const cases: [string, string][] = [
        ['Patient?birthdate=notadate', 'birthdate'],
        ['Patient?birthdate=2024-13-45', 'birthdate'],
        ['Patient?birthdate=2023-02-29', 'birthdate'],
        ['Patient?birthdate=2024-01-01T25:00:00Z', 'birthdate'],
        ['Patient?birthdate=xx2024', 'birthdate'],
        ['Patient?birthdate=ge', 'birthdate'],
        ['Patient?birthdate=gt2024,bad', 'birthdate'],
        ['Patient?_lastUpdated=yesterday', '_lastUpdated'],
        ['Patient?_lastUpdated:not=2024', '_lastUpdated:not'],
        ['RiskAssessment?probability=1.2.3', 'probability'],
        ['RiskAssessment?probability=zz5', 'probability'],
        ['RiskAssessment?probability=1e999', 'probability'],
        ['Observation?value-quantity=abc', 'value-quantity'],
        ['Observation?value-quantity=xx5|http://unitsofmeasure.org|kg', 'value-quantity'],
        ['Observation?code-value-quantity=8867-4', 'code-value-quantity'],
        ['Observation?code-value-quantity=8867-4$abc', 'code-value-quantity'],
        ['Observation?date:missing=maybe', 'date:missing'],
        ['Patient?gender:missing=true,false', 'gender:missing'],
        ['Patient?gender:foo=male', 'gender:foo'],
        ['Patient?name:below=x', 'name:below'],
        ['Patient?birthdate:exact=2024', 'birthdate:exact'],
        ['Patient?identifier:of-type=MR', 'identifier:of-type'],
        ['Patient?name.family=x', 'name.family'],
        ['Patient?gender:a:b=x', 'gender:a:b'],
        ['Patient?_sort=bogus', '_sort'],
        ['Patient?_count=-1', '_count'],
        ['Patient?_count=ten', '_count'],
        ['Patient?_total=maybe', '_total'],
        ['Patient?_summary=maybe', '_summary'],
        ['Patient?_cursor=not-a-cursor', '_cursor'],
        ['Patient?_include=Patient:bogus', '_include'],
      ];
      for (const [query, expression] of cases) await expect400(query, expression);
    });

    it('Prefer: handling=lenient ignores bad parameters and reports them in an outcome entry', async () => {
      const res = await get('Patient?foo=bar&gender=male&birthdate=notadate&_sort=bogus&_count=ten', LENIENT);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(ids(res.body), ['p1', 'p3']);
      const outcome = res.body.entry.find((e: any) => e.search.mode === 'outcome')?.resource;
      assert.equal(outcome?.resourceType, 'OperationOutcome');
      const named = outcome.issue.flatMap((i: any) => i.expression);
      for (const p of ['foo', 'birthdate', '_sort', '_count']) assert.ok(named.includes(p), `${p} in ${named}`);
      // the self link carries only the parameters the search used
      const self = new URL(res.body.link.find((l: any) => l.relation === 'self').url);
      assert.deepEqual([...self.searchParams], [['gender', 'male']]);
      const clean = await get('Patient?gender=female', LENIENT);
      assert.deepEqual(ids(clean.body), ['p2']);
      assert.ok(!clean.body.entry.some((e: any) => e.search.mode === 'outcome'));
    });

    it('SQL-looking values in every parameter type never cause a 5xx or leak rows', async () => {
      const before = (await get('Patient?_summary=count')).body.total;
      for (const template of TEMPLATES) {
        for (const value of INJECTIONS) {
          const query = template.replaceAll('$', encodeURIComponent(value));
          const res = await get(query);
          assert.ok(res.status < 500, `${query}: ${res.status} ${JSON.stringify(res.body)}`);
          assert.ok(res.status === 200 || res.status === 400, `${query}: ${res.status}`);
          if (res.status === 200 && !template.includes('?_') && !template.includes(':not')) {
            assert.deepEqual(ids(res.body), [], `${query} matched ${ids(res.body)}`);
          }
        }
      }
      assert.equal((await get('Patient?_summary=count')).body.total, before);
      assert.deepEqual(ids((await get('Patient?name=qui')).body), ['p1', 'p3']);
    });

    it('an empty value is ignored and empty items of a list match nothing', async () => {
      assert.deepEqual(ids((await get('Patient?name=&gender=female')).body), ['p2']);
      assert.deepEqual(ids((await get('Patient?_count=&_sort=&birthdate=')).body), ['p1', 'p2', 'p3']);
      assert.deepEqual(ids((await get('Patient?name=rossi,')).body), ['p2']);
      assert.deepEqual(ids((await get('Patient?name=,rossi,,')).body), ['p2']);
      await expect400('Patient?name=,', 'name');
    });

    it('LIKE wildcards in string values are literal', async () => {
      assert.deepEqual(ids((await get('Patient?name=%25')).body), []);
      assert.deepEqual(ids((await get('Patient?name=_')).body), []);
      assert.deepEqual(ids((await get('Patient?name:contains=%25')).body), []);
      assert.deepEqual(ids((await get('Patient?name=qu_nn')).body), []);
      assert.deepEqual(ids((await get('Patient?name=qu%25n')).body), []);
    });

    it('a backslash escapes a comma inside a value', async () => {
      const put = await request('PUT', `${s.fhir}/Patient/comma`, { resourceType: 'Patient', id: 'comma', name: [{ family: 'Smith, Jr' }] });
      assert.equal(put.status, 201);
      assert.deepEqual(ids((await get(`Patient?name=${encodeURIComponent('smith\\, jr')}`)).body), ['comma']);
      assert.deepEqual(ids((await get(`Patient?name:exact=${encodeURIComponent('Smith\\, Jr')}`)).body), ['comma']);
      assert.deepEqual(ids((await get(`Patient?name:exact=${encodeURIComponent('Smith, Jr')}`)).body), []);
      assert.equal((await request('DELETE', `${s.fhir}/Patient/comma`)).status, 200);
    });

    it('POST [type]/_search with a form body answers as GET does', async () => {
      const form = (body: string, query = '') => fetch(`${s.fhir}/Patient/_search${query}`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/fhir+json', ...authHeader() }, body,
      });
      const cases = ['gender=male&_sort=-_id', 'name=quinn,rossi', `_has:Observation:patient:code=${encodeURIComponent(`${LOINC}|8867-4`)}`, 'birthdate=ge1965&_total=accurate'];
      for (const body of cases) {
        const posted = await form(body);
        assert.equal(posted.status, 200, body);
        const postedBody = (await posted.json()) as any;
        const got = (await get(`Patient?${body}`)).body;
        assert.deepEqual(postedBody.entry.map((e: any) => e.resource.id), got.entry.map((e: any) => e.resource.id), body);
        assert.equal(postedBody.total, got.total, body);
      }
      const merged = (await (await form('gender=male', '?name=quinn')).json()) as any;
      assert.deepEqual(ids(merged), ['p1']);
      const bad = await form('foo=bar');
      assert.equal(bad.status, 400);
      const paged = (await (await form('_sort=_id&_count=1')).json()) as any;
      const next = paged.link.find((l: any) => l.relation === 'next').url;
      assert.deepEqual(ids((await request('GET', next)).body), ['p2']);
    });
  });
}
