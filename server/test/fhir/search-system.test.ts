import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, clientCredentialsToken, request, useServer } from '../support.ts';
import { authorizationCodeFlow } from '../auth/smart-flow.ts';

const TAG = { system: 'urn:test:sys', code: 'mine' };
const PROFILE = 'https://example.org/StructureDefinition/sys-profile';
const SECURITY = { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' };
const SOURCE = 'urn:test:feed';

/**
 * Ids are lower-case letters and digits of one length, so that every collation orders them as
 * JavaScript does; the same id in two types shows `_id` matching across types.
 */
const seed = [
  { resourceType: 'Patient', id: 'sysa01', meta: { tag: [TAG] }, name: [{ family: 'Alpha' }] },
  { resourceType: 'Observation', id: 'sysa01', meta: { tag: [TAG], profile: [PROFILE] }, status: 'final', code: { text: 'note' }, subject: { reference: 'Patient/sysa01' } },
  { resourceType: 'Patient', id: 'sysb02', meta: { tag: [TAG], security: [SECURITY] }, name: [{ family: 'Bravo' }] },
  { resourceType: 'Observation', id: 'sysb02', meta: { tag: [TAG], source: SOURCE }, status: 'final', code: { text: 'note' }, subject: { reference: 'Patient/sysb02' } },
  { resourceType: 'Condition', id: 'sysc03', meta: { tag: [TAG] }, subject: { reference: 'Patient/sysa01' }, code: { text: 'c' } },
  { resourceType: 'Practitioner', id: 'sysd04', meta: { tag: [TAG] }, name: [{ family: 'Doc' }] },
  { resourceType: 'Observation', id: 'syse05', meta: { tag: [TAG] }, status: 'final', code: { text: 'note' }, subject: { reference: 'Patient/sysa01' } },
  { resourceType: 'Patient', id: 'sysf06', meta: { tag: [TAG] }, name: [{ family: 'Foxtrot' }] },
];

const key = (e: any): string => `${e.resource.resourceType}/${e.resource.id}`;
const matches = (b: any): string[] => (b.entry ?? []).filter((e: any) => e.search?.mode === 'match').map(key);
const link = (b: any, relation: string): string | undefined => b.link.find((l: any) => l.relation === relation)?.url;

for (const driver of DRIVERS) {
  describe(`FHIR system search (${driver})`, () => {
    const s = useServer(driver);
    /** Seeded resources in the server's order: _lastUpdated, then type, then id. */
    let ordered: string[] = [];
    let middle = '';

    async function get(query: string, headers?: Record<string, string>): Promise<any> {
      const res = await request('GET', query.startsWith('http') ? query : `${s.fhir}?${query}`, undefined, headers);
      assert.equal(res.status, 200, `${query}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.type, 'searchset');
      return res.body;
    }

    before(async () => {
      const written: { key: string; lastUpdated: string; type: string; id: string }[] = [];
      for (const r of seed) {
        const res = await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r);
        assert.equal(res.status, 201, JSON.stringify(res.body));
        written.push({ key: `${r.resourceType}/${r.id}`, lastUpdated: res.body.meta.lastUpdated, type: r.resourceType, id: r.id });
        if (written.length === 4) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          middle = new Date().toISOString();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
      ordered = written.sort((a, b) => cmp(a.lastUpdated, b.lastUpdated) || cmp(a.type, b.type) || cmp(a.id, b.id)).map((w) => w.key);
    });

    it('searches the types _type lists, oldest first, with full URLs', async () => {
      const b = await get('_type=Patient,Observation');
      assert.deepEqual(matches(b), ordered.filter((k) => /^(Patient|Observation)\//.test(k)));
      assert.equal(b.total, 6);
      for (const e of b.entry) assert.equal(e.fullUrl, `${s.fhir}/${key(e)}`);
      assert.equal(link(b, 'self'), `${s.fhir}?_type=Patient%2CObservation`);
      assert.deepEqual(matches(await get('_type=Condition&_type=Practitioner')), ['Condition/sysc03', 'Practitioner/sysd04']);
    });

    it('searches every type when _type is absent', async () => {
      assert.deepEqual(matches(await get(`_tag=${TAG.system}|${TAG.code}&_count=100`)), ordered);
      assert.equal((await get(`_tag=${TAG.system}|${TAG.code}&_summary=count`)).total, seed.length);
    });

    it('filters with the parameters every type has: _id, _lastUpdated, _tag, _profile, _security, _source', async () => {
      const tagged = `_tag=${TAG.system}|${TAG.code}`;
      assert.deepEqual(matches(await get('_id=sysa01')).sort(), ['Observation/sysa01', 'Patient/sysa01']);
      assert.deepEqual(matches(await get('_type=Patient&_id=sysa01,sysb02')), ['Patient/sysa01', 'Patient/sysb02']);
      assert.deepEqual(matches(await get(`${tagged}&_lastUpdated=gt${middle}`)), ordered.slice(4));
      assert.deepEqual(matches(await get(`${tagged}&_lastUpdated=lt${middle}`)), ordered.slice(0, 4));
      assert.deepEqual(matches(await get(`_profile=${PROFILE}`)), ['Observation/sysa01']);
      assert.deepEqual(matches(await get(`_security=${SECURITY.system}|${SECURITY.code}`)), ['Patient/sysb02']);
      assert.deepEqual(matches(await get(`_source=${SOURCE}`)), ['Observation/sysb02']);
      assert.deepEqual(matches(await get(`_tag=${TAG.system}|other`)), []);
    });

    it('takes a parameter that all listed types share', async () => {
      assert.deepEqual(matches(await get('_type=Observation,Condition&patient=Patient/sysa01')), ordered.filter((k) => ['Observation/sysa01', 'Condition/sysc03', 'Observation/syse05'].includes(k)));
    });

    it('pages across types with a keyset cursor, forwards and back, in either _lastUpdated order', async () => {
      const tagged = `_tag=${TAG.system}|${TAG.code}`;
      for (const [sort, expected] of [['_lastUpdated', ordered], ['-_lastUpdated', [...ordered].reverse()]] as const) {
        const pages: string[][] = [];
        let b = await get(`${tagged}&_sort=${sort}&_count=3`);
        pages.push(matches(b));
        assert.equal(link(b, 'previous'), undefined);
        while (link(b, 'next')) {
          b = await get(link(b, 'next') as string);
          pages.push(matches(b));
        }
        assert.deepEqual(pages.flat(), expected, sort);
        assert.deepEqual(pages.map((p) => p.length), [3, 3, 2]);
        const back: string[][] = [matches(b)];
        while (link(b, 'previous')) {
          b = await get(link(b, 'previous') as string);
          back.unshift(matches(b));
        }
        assert.deepEqual(back, pages, `${sort} backwards`);
      }
    });

    it('takes POST /_search with a form body', async () => {
      const res = await fetch(`${s.fhir}/_search`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${s.token}` },
        body: new URLSearchParams({ _type: 'Patient', _id: 'sysb02,sysf06' }),
      });
      const body = (await res.json()) as any;
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.deepEqual(matches(body), ['Patient/sysb02', 'Patient/sysf06']);
    });

    it('counts, includes and shapes results as type searches do', async () => {
      assert.equal((await get('_type=Observation,Condition&_id=sysa01,sysc03&_total=accurate&_count=1')).total, 2);
      const estimated = (await get('_type=Patient,Observation&_total=estimate')).total;
      assert.ok(Number.isInteger(estimated) && estimated >= 0);
      const included = await get('_type=Observation&_id=sysb02&_include=Observation:subject');
      assert.deepEqual(included.entry.map((e: any) => `${e.search.mode} ${key(e)}`), ['match Observation/sysb02', 'include Patient/sysb02']);
      const summary = await get('_type=Patient&_id=sysa01&_elements=name');
      assert.equal(summary.entry[0].resource.name[0].family, 'Alpha');
      assert.ok(summary.entry[0].resource.meta.tag.some((t: any) => t.code === 'SUBSETTED'));
    });

    it('refuses what does not apply across the types, naming the parameter; lenient handling ignores it for all', async () => {
      const cases: [string, string][] = [
        ['_type=Patient,Observation&code=note', 'code'],
        ['_type=Patient,Nonsense', '_type'],
        ['gender=male', 'gender'],
        ['_type=Patient,Observation&_sort=birthdate', '_sort'],
        ['_type=Patient&_lastUpdated=yesterday', '_lastUpdated'],
        ['_type=Patient&_count=-1', '_count'],
        ['_type=Patient&_cursor=bm9wZQ', '_cursor'],
      ];
      for (const [query, parameter] of cases) {
        const res = await request('GET', `${s.fhir}?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.resourceType, 'OperationOutcome');
        assert.ok(res.body.issue.some((i: any) => i.expression?.includes(parameter)), `${query}: ${JSON.stringify(res.body)}`);
      }
      const lenient = await request('GET', `${s.fhir}?_type=Patient,Observation&_id=sysa01&code=note`, undefined, { prefer: 'handling=lenient' });
      assert.equal(lenient.status, 200);
      assert.deepEqual(matches(lenient.body).sort(), ['Observation/sysa01', 'Patient/sysa01'], 'code ignored for both types');
      assert.ok(lenient.body.entry.some((e: any) => e.search.mode === 'outcome' && e.resource.issue[0].expression[0] === 'code'));
    });

    it('applies the token\'s access as each type search would', async () => {
      const secret = 'system-search-secret-1234';
      const registered = await request('POST', `${s.base}/admin/clients`, { client_id: 'sys-obs-reader', secret, scopes: 'system/Observation.rs' });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      const reader = { authorization: `Bearer ${await clientCredentialsToken(s.base, 'sys-obs-reader', secret, 'system/Observation.rs')}` };
      const tagged = `_tag=${TAG.system}|${TAG.code}`;
      assert.deepEqual(matches(await get(`${tagged}&_count=100`, reader)), ordered.filter((k) => k.startsWith('Observation/')));
      assert.deepEqual(matches(await get('_type=Patient,Condition', reader)), []);
      assert.deepEqual(matches(await get('_type=Observation&_id=sysb02&_include=Observation:subject', reader)), ['Observation/sysb02']);
      assert.equal((await get('_type=Observation,Patient&_summary=count', reader)).total, 3);

      // a patient's own compartment, through the authorization code flow
      const redirect = 'http://localhost:9/callback';
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'sys-app', redirect_uris: [redirect], scopes: 'patient/*.rs' })).status, 201);
      assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'alpha@sys', password: 'correct horse battery', fhirUser: 'Patient/sysa01' })).status, 201);
      const flow = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'sys-app', redirectUri: redirect, scope: 'launch/patient patient/*.rs', username: 'alpha@sys', password: 'correct horse battery' });
      assert.equal(flow.status, 200, JSON.stringify(flow.body));
      const patient = { authorization: `Bearer ${flow.body.access_token}` };
      const own = ordered.filter((k) => ['Patient/sysa01', 'Observation/sysa01', 'Condition/sysc03', 'Observation/syse05', 'Practitioner/sysd04'].includes(k));
      assert.deepEqual(matches(await get(`${tagged}&_count=100`, patient)), own, 'own compartment, and types outside any compartment');
      const posted = await fetch(`${s.fhir}/_search`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...patient }, body: `${tagged}&_type=Patient,Observation` });
      assert.deepEqual(matches(await posted.json()), own.filter((k) => /^(Patient|Observation)\//.test(k)));
    });

    it('is declared in the CapabilityStatement', async () => {
      const rest = (await request('GET', `${s.fhir}/metadata`)).body.rest[0];
      assert.ok(rest.interaction.some((i: any) => i.code === 'search-system'));
      assert.deepEqual(rest.searchParam.map((p: any) => p.name), ['_type', '_id', '_lastUpdated', '_tag', '_profile', '_security', '_source']);
    });
  });
}
