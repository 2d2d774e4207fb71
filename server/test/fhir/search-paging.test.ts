import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const SUBSETTED = 'SUBSETTED';

/** pg-1…pg-7: families sort as their ids (accents and case ignored); two birth dates and a gender are missing. */
const patients = [
  ['Adams', '1980-01-01', 'female'],
  ['baker', undefined, 'male'],
  ['Clark', '1970-05-05', 'female'],
  ['Davis', '1990-12-12', 'male'],
  ['Évans', undefined, 'female'],
  ['Frank', '1970-05-05', 'male'],
  ['Green', '2000-01-01', undefined],
].map(([family, birthDate, gender], i) => ({
  resourceType: 'Patient', id: `pg-${i + 1}`, name: [{ family, given: ['Pat'] }],
  ...(birthDate ? { birthDate } : {}), ...(gender ? { gender } : {}),
}));
const detailed = {
  ...patients[0],
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Adams</div>' },
  maritalStatus: { text: 'married' }, multipleBirthInteger: 2, active: true,
};

const reading = (id: string, patient: string, code: string, effective: Record<string, unknown>) => ({
  resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code }] },
  subject: { reference: `Patient/${patient}` }, valueQuantity: { value: 70 }, ...effective,
});
const readings = [
  reading('h1', 'hp1', '8867-4', { effectiveDateTime: '2023-12-31T10:00:00Z' }),
  reading('h2', 'hp1', '8867-4', { effectiveDateTime: '2024-01-05T10:00:00Z' }),
  reading('h3', 'hp1', '8867-4', { effectiveDateTime: '2024-02-01T10:00:00Z' }),
  reading('h4', 'hp1', '8867-4', { effectiveDateTime: '2024-03-01T10:00:00+01:00' }),
  reading('h5', 'hp1', '8310-5', { effectiveDateTime: '2024-02-15T10:00:00Z' }),
  reading('h6', 'hp2', '8867-4', { effectiveDateTime: '2024-02-20T10:00:00Z' }),
  reading('h7', 'hp1', '8867-4', { effectivePeriod: { start: '2024-02-10T00:00:00Z', end: '2024-02-10T01:00:00Z' } }),
  reading('h8', 'hp3', '8867-4', { effectivePeriod: { end: '2024-01-20T00:00:00Z' } }),
  reading('h9', 'hp3', '8867-4', {}),
];

const ids = (b: any): string[] => b.entry.filter((e: any) => e.search?.mode === 'match').map((e: any) => e.resource.id);
const link = (b: any, relation: string): string | undefined => b.link.find((l: any) => l.relation === relation)?.url;

for (const driver of DRIVERS) {
  describe(`FHIR search: sort, paging, summary, elements, total (${driver})`, () => {
    const s = useServer(driver);

    async function get(url: string): Promise<any> {
      const res = await request('GET', url.startsWith('http') ? url : `${s.fhir}/${url}`);
      assert.equal(res.status, 200, `${url}: ${JSON.stringify(res.body)}`);
      return res.body;
    }
    async function expectOrder(query: string, expected: string[]): Promise<void> {
      assert.deepEqual(ids(await get(query)), expected, query);
    }
    /** Follows `relation` links from the first page, returning each page's ids. */
    async function walk(first: string, relation: 'next' | 'previous'): Promise<string[][]> {
      const pages: string[][] = [];
      let url: string | undefined = first;
      while (url) {
        const b = await get(url);
        pages.push(ids(b));
        url = link(b, relation);
        assert.ok(pages.length < 50, 'paging does not end');
      }
      return pages;
    }
    /** Walks forward to the last page, then back through `previous`, checking both against `expected`. */
    async function walkBothWays(query: string, expected: string[]): Promise<void> {
      const forward = await walk(query, 'next');
      assert.deepEqual(forward.flat(), expected, `${query} forward`);
      let last = await get(query);
      while (link(last, 'next')) last = await get(link(last, 'next') as string);
      const previous = link(last, 'previous');
      assert.ok(previous || forward.length === 1, `${query}: last page links previous`);
      const backward = previous ? await walk(previous, 'previous') : [];
      assert.deepEqual([...backward].reverse().flat(), expected.slice(0, expected.length - forward[forward.length - 1].length), `${query} backward`);
    }
    const put = async (r: { resourceType: string; id: string }): Promise<void> => {
      const res = await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    };

    before(async () => {
      for (const r of [detailed, ...patients.slice(1), ...readings]) await put(r);
    });

    it('sorts by string, date, token and several keys, ascending and descending', async () => {
      const all = patients.map((p) => p.id);
      await expectOrder('Patient?_sort=family', all);
      await expectOrder('Patient?_sort=-family', [...all].reverse());
      await expectOrder('Patient?_sort=name', all);
      await expectOrder('Patient?_sort=birthdate', ['pg-3', 'pg-6', 'pg-1', 'pg-4', 'pg-7', 'pg-2', 'pg-5']);
      await expectOrder('Patient?_sort=-birthdate', ['pg-2', 'pg-5', 'pg-7', 'pg-4', 'pg-1', 'pg-3', 'pg-6']);
      await expectOrder('Patient?_sort=gender,-birthdate', ['pg-5', 'pg-1', 'pg-3', 'pg-2', 'pg-4', 'pg-6', 'pg-7']);
      await expectOrder('Patient?_sort=birthdate,-_id', ['pg-6', 'pg-3', 'pg-1', 'pg-4', 'pg-7', 'pg-5', 'pg-2']);
      await expectOrder('Patient?_sort=-_id', [...all].reverse());
      await expectOrder('Patient?_sort=_id&_count=3', all.slice(0, 3));
      await expectOrder('Observation?_sort=date', ['h8', 'h1', 'h2', 'h3', 'h7', 'h5', 'h6', 'h4', 'h9']);
    });

    it('sorts a parameter with several values by its first in the order asked for: lowest ascending, highest descending', async () => {
      const named = (id: string, ...families: string[]) => ({ resourceType: 'Practitioner', id, name: families.map((family) => ({ family })) });
      for (const r of [named('sv-a', 'Young', 'Baker'), named('sv-b', 'Carter'), named('sv-c', 'Zed', 'Adams')]) await put(r);
      await walkBothWays('Practitioner?_sort=family&_count=1', ['sv-c', 'sv-a', 'sv-b']);
      await walkBothWays('Practitioner?_sort=-family&_count=1', ['sv-c', 'sv-a', 'sv-b']);
      await expectOrder('Practitioner?_sort=-family,_id', ['sv-c', 'sv-a', 'sv-b']);
      await expectOrder('Practitioner?family=carter,young&_sort=family', ['sv-a', 'sv-b']);
    });

    it('sorts by _lastUpdated in write order', async () => {
      for (const id of ['lu-c', 'lu-a', 'lu-b']) {
        await put({ resourceType: 'Basic', id, code: { text: 'lu' } } as any);
        await new Promise((r) => setTimeout(r, 5));
      }
      await expectOrder('Basic?code:text=lu&_sort=_lastUpdated', ['lu-c', 'lu-a', 'lu-b']);
      await expectOrder('Basic?code:text=lu&_sort=-_lastUpdated', ['lu-b', 'lu-a', 'lu-c']);
      await expectOrder('Basic?code:text=lu', ['lu-c', 'lu-a', 'lu-b']);
    });

    it('the monitoring hot path returns the patient\'s readings of the code, newest first', async () => {
      const b = await get(`Observation?patient=Patient/hp1&code=${LOINC}|8867-4&date=ge2024-01-01&_sort=-date&_count=50`);
      assert.deepEqual(ids(b), ['h4', 'h7', 'h3', 'h2']);
      assert.equal(link(b, 'next'), undefined);
      await expectOrder(`Observation?subject=Patient/hp1&code=${LOINC}|8867-4&_sort=-date&_count=2`, ['h4', 'h7']);
    });

    it('pages through every match exactly once, in both directions, also with missing sort values', async () => {
      const byBirth = ['pg-3', 'pg-6', 'pg-1', 'pg-4', 'pg-7', 'pg-2', 'pg-5'];
      await walkBothWays('Patient?_sort=birthdate&_count=2', byBirth);
      await walkBothWays('Patient?_sort=-birthdate&_count=3', ['pg-2', 'pg-5', 'pg-7', 'pg-4', 'pg-1', 'pg-3', 'pg-6']);
      await walkBothWays('Patient?_sort=gender,-birthdate&_count=2', ['pg-5', 'pg-1', 'pg-3', 'pg-2', 'pg-4', 'pg-6', 'pg-7']);
      await walkBothWays('Patient?_count=1', patients.map((p) => p.id));
      await walkBothWays('Observation?_sort=-date&_count=2', ['h9', 'h4', 'h6', 'h5', 'h7', 'h3', 'h2', 'h1', 'h8']);
      await walkBothWays('Observation?_sort=date&_count=4', ['h8', 'h1', 'h2', 'h3', 'h7', 'h5', 'h6', 'h4', 'h9']);
    });

    it('links keep the search parameters and the first page has no previous link', async () => {
      const b = await get('Patient?gender=male&_sort=_id&_count=1');
      assert.deepEqual(ids(b), ['pg-2']);
      assert.equal(link(b, 'previous'), undefined);
      assert.match(link(b, 'self') as string, /gender=male/);
      const next = new URL(link(b, 'next') as string);
      assert.equal(next.searchParams.get('gender'), 'male');
      assert.equal(next.searchParams.get('_count'), '1');
      assert.deepEqual(ids(await get(next.toString())), ['pg-4']);
    });

    it('new resources created while paging do not shift pages', async () => {
      const initial: string[] = [];
      for (let i = 0; i < 7; i++) {
        initial.push(`w-${i}`);
        await put({ resourceType: 'Basic', id: `w-${i}`, code: { text: 'walk' } } as any);
      }
      for (const sort of ['', '&_sort=-_lastUpdated', '&_sort=_id']) {
        const seen: string[] = [];
        let url: string | undefined = `Basic?code:text=walk&_count=3${sort}`;
        let created = 0;
        while (url) {
          const b = await get(url);
          seen.push(...ids(b));
          url = link(b, 'next');
          // each new resource sorts first by _id (`a-…`) or last by _lastUpdated
          await put({ resourceType: 'Basic', id: `a-${sort.length}-${created++}`, code: { text: 'walk' } } as any);
        }
        assert.equal(new Set(seen).size, seen.length, `no duplicates ${sort}: ${seen}`);
        for (const id of initial) assert.ok(seen.includes(id), `${id} seen ${sort}`);
        initial.push(...seen.filter((id) => !initial.includes(id)));
        if (sort === '') assert.ok(seen.some((id) => id.startsWith('a-')), 'new resources appear on later pages');
      }
    });

    it('_count limits a page; _count=0 and _summary=count give only the total', async () => {
      const b = await get('Patient?_sort=_id&_count=3');
      assert.equal(b.entry.length, 3);
      assert.ok(link(b, 'next'));
      const zero = await get('Patient?_count=0');
      assert.equal(zero.entry?.length ?? 0, 0);
      assert.equal(zero.total, 7);
      const count = await get('Patient?gender=male&_summary=count');
      assert.equal(count.total, 3);
      assert.equal(count.entry?.length ?? 0, 0);
    });

    it('_total=none, estimate and accurate', async () => {
      assert.equal((await get('Patient?_total=accurate&_count=2')).total, 7);
      assert.equal((await get('Patient?gender=female&_total=accurate&_count=1')).total, 3);
      assert.equal((await get('Patient?_total=none')).total, undefined);
      assert.equal((await get('Patient?_total=none&_count=2')).total, undefined);
      const estimate = (await get('Patient?_total=estimate')).total;
      assert.ok(Number.isInteger(estimate) && estimate >= 0, String(estimate));
      assert.equal((await get('Patient?gender=male')).total, 3);
    });

    it('_summary=true, text, data and false', async () => {
      const one = async (summary: string): Promise<any> => (await get(`Patient?_id=pg-1&_summary=${summary}`)).entry[0].resource;
      const tags = (r: any): string[] => (r.meta?.tag ?? []).map((t: any) => t.code);
      const full = await one('false');
      assert.equal(full.maritalStatus.text, 'married');
      assert.ok(!tags(full).includes(SUBSETTED));
      const summary = await one('true');
      assert.deepEqual(summary.name, detailed.name);
      assert.equal(summary.birthDate, '1980-01-01');
      assert.equal(summary.active, true);
      assert.equal(summary.text, undefined);
      assert.equal(summary.maritalStatus, undefined);
      assert.equal(summary.multipleBirthInteger, undefined);
      assert.ok(tags(summary).includes(SUBSETTED));
      const text = await one('text');
      assert.deepEqual(Object.keys(text).sort(), ['id', 'meta', 'resourceType', 'text']);
      assert.ok(tags(text).includes(SUBSETTED));
      const data = await one('data');
      assert.equal(data.text, undefined);
      assert.equal(data.maritalStatus.text, 'married');
      assert.ok(tags(data).includes(SUBSETTED));
    });

    it('_elements keeps the named elements (choice types by their base name), mandatory ones and meta', async () => {
      const patient = (await get('Patient?_id=pg-1&_elements=name,multipleBirth')).entry[0].resource;
      assert.deepEqual(Object.keys(patient).sort(), ['id', 'meta', 'multipleBirthInteger', 'name', 'resourceType']);
      assert.ok(patient.meta.tag.some((t: any) => t.code === SUBSETTED));
      assert.equal(patient.meta.versionId, '1');
      const reading = (await get('Observation?_id=h1&_elements=value')).entry[0].resource;
      assert.deepEqual(reading.valueQuantity, { value: 70 });
      assert.equal(reading.status, 'final');
      assert.ok(reading.code);
      assert.equal(reading.subject, undefined);
      assert.equal(reading.effectiveDateTime, undefined);
      const named = (await get('Patient?_id=pg-1&_elements=Patient.gender')).entry[0].resource;
      assert.deepEqual(Object.keys(named).sort(), ['gender', 'id', 'meta', 'resourceType']);
    });
  });
}
