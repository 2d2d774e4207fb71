import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DRIVERS, UUID_V7, authHeader, request, useServer } from '../support.ts';

const patient = { resourceType: 'Patient', name: [{ family: 'Okafor', given: ['Ada'] }], gender: 'female', birthDate: '1950-02-03' };

for (const driver of DRIVERS) {
  describe(`FHIR CRUD and history (${driver})`, () => {
    const s = useServer(driver);

    it('creates with a server-assigned id, Location, ETag and Last-Modified', async () => {
      const res = await request('POST', `${s.fhir}/Patient`, { ...patient, id: 'client-chosen' });
      assert.equal(res.status, 201);
      assert.match(res.body.id, UUID_V7);
      assert.notEqual(res.body.id, 'client-chosen');
      assert.equal(res.body.meta.versionId, '1');
      assert.equal(res.headers.get('location'), `${s.fhir}/Patient/${res.body.id}/_history/1`);
      assert.equal(res.headers.get('etag'), 'W/"1"');
      assert.ok(res.headers.get('last-modified'));
      const read = await request('GET', `${s.fhir}/Patient/${res.body.id}`);
      assert.equal(read.status, 200);
      assert.deepEqual(read.body.name, patient.name);
      assert.equal(read.headers.get('etag'), 'W/"1"');
    });

    it('stores text with a lone surrogate, and text that reads like its escape', async () => {
      // the row travels as JSON, which writes a lone surrogate as an escape PostgreSQL refuses
      const odd = { ...patient, name: [{ family: 'Ok\ud800afor', given: ['\\ud800', '\\\ud83d'] }] };
      const res = await request('POST', `${s.fhir}/Patient`, odd);
      assert.equal(res.status, 201);
      const read = await request('GET', `${s.fhir}/Patient/${res.body.id}`);
      assert.deepEqual(read.body.name, odd.name);
    });

    it('accepts application/json and honours _pretty and gzip', async () => {
      const res = await fetch(`${s.fhir}/Patient`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeader() }, body: JSON.stringify(patient) });
      assert.equal(res.status, 201);
      const id = ((await res.json()) as { id: string }).id;
      const pretty = await fetch(`${s.fhir}/Patient/${id}?_pretty=true`, { headers: authHeader() });
      assert.match(await pretty.text(), /\n  "resourceType": "Patient"/);
      const gz = await fetch(`${s.fhir}/metadata`, { headers: { 'accept-encoding': 'gzip' } });
      assert.equal(gz.headers.get('content-encoding'), 'gzip');
      const xml = await request('GET', `${s.fhir}/Patient/${id}?_format=xml`);
      assert.equal(xml.status, 406);
    });

    it('updates with versioning, If-Match and Prefer', async () => {
      const created = (await request('POST', `${s.fhir}/Patient`, patient)).body;
      const url = `${s.fhir}/Patient/${created.id}`;
      const v2 = await request('PUT', url, { ...created, gender: 'other' }, { 'if-match': 'W/"1"' });
      assert.equal(v2.status, 200);
      assert.equal(v2.body.meta.versionId, '2');
      const stale = await request('PUT', url, { ...created, gender: 'male' }, { 'if-match': 'W/"1"' });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.resourceType, 'OperationOutcome');
      const minimal = await request('PUT', url, { ...created, gender: 'male' }, { prefer: 'return=minimal' });
      assert.equal(minimal.status, 200);
      assert.equal(minimal.body, undefined);
      assert.equal(minimal.headers.get('etag'), 'W/"3"');
      const oo = await request('PUT', url, { ...created, gender: 'female' }, { prefer: 'return=OperationOutcome' });
      assert.equal(oo.body.resourceType, 'OperationOutcome');
      const v1 = await request('GET', `${url}/_history/1`);
      assert.equal(v1.status, 200);
      assert.equal(v1.body.gender, 'female');
      assert.equal(v1.body.meta.versionId, '1');
      assert.equal((await request('GET', `${url}/_history/99`)).status, 404);
    });

    it('creates on update with a client id', async () => {
      const res = await request('PUT', `${s.fhir}/Patient/my-id-1`, { ...patient, id: 'my-id-1' });
      assert.equal(res.status, 201);
      assert.equal(res.body.id, 'my-id-1');
      assert.equal((await request('GET', `${s.fhir}/Patient/my-id-1`)).status, 200);
    });

    it('deletes softly: read is 410, history keeps the versions, re-create continues the versions', async () => {
      const created = (await request('POST', `${s.fhir}/Patient`, patient)).body;
      const url = `${s.fhir}/Patient/${created.id}`;
      assert.equal((await request('DELETE', url)).status, 200);
      assert.equal((await request('GET', url)).status, 410);
      assert.equal((await request('DELETE', url)).status, 200);
      const search = await request('GET', `${s.fhir}/Patient?_id=${created.id}`);
      assert.equal(search.body.entry.length, 0);
      const history = await request('GET', `${url}/_history`);
      assert.equal(history.status, 200);
      assert.equal(history.body.type, 'history');
      assert.deepEqual(history.body.entry.map((e: any) => e.request.method), ['DELETE', 'POST']);
      const again = await request('PUT', url, { ...patient, id: created.id });
      assert.equal(again.status, 201);
      assert.equal(again.body.meta.versionId, '3');
    });

    it('serves type and system history with _since, _count and paging', async () => {
      const since = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 5));
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await request('POST', `${s.fhir}/Device`, { resourceType: 'Device', status: 'active' })).body.id);
      const page1 = await request('GET', `${s.fhir}/Device/_history?_since=${since}&_count=3`);
      assert.equal(page1.body.entry.length, 3);
      const next = page1.body.link.find((l: any) => l.relation === 'next');
      assert.ok(next);
      const page2 = await request('GET', next.url);
      assert.equal(page2.body.entry.length, 2);
      const seen = [...page1.body.entry, ...page2.body.entry].map((e: any) => e.resource.id).sort();
      assert.deepEqual(seen, [...ids].sort());
      const system = await request('GET', `${s.fhir}/_history?_since=${since}&_count=100`);
      assert.equal(system.body.entry.length, 5);
      const at = await request('GET', `${s.fhir}/Device/${ids[0]}/_history?_at=${since}`);
      assert.equal(at.body.entry.length, 0);
    });

    it('answers _at with the versions current during its period, paging without repeats', async () => {
      const pause = () => new Promise((r) => setTimeout(r, 5));
      const put = (id: string, status: string) => request('PUT', `${s.fhir}/Medication/${id}`, { resourceType: 'Medication', id, status });
      const a = `at-${Date.now()}-a`;
      const b = `at-${Date.now()}-b`;
      await put(a, 'active');
      await put(b, 'active');
      await pause();
      await put(a, 'inactive');
      await pause();
      const between = new Date().toISOString();
      await pause();
      await put(a, 'entered-in-error');
      await put(b, 'inactive');
      const versions = async (url: string) => {
        const seen: string[] = [];
        for (let next: string | undefined = url; next;) {
          const page: { status: number; body: any } = await request('GET', next);
          assert.equal(page.status, 200);
          seen.push(...(page.body.entry ?? []).map((e: any) => `${e.resource.id}/${e.resource.meta.versionId}`));
          next = page.body.link.find((l: any) => l.relation === 'next')?.url;
        }
        return seen.filter((v) => v.startsWith('at-')).sort();
      };
      // one page per version: a later page must not fall back to a version replaced before _at
      assert.deepEqual(await versions(`${s.fhir}/Medication/_history?_at=${between}&_count=1`), [`${a}/2`, `${b}/1`]);
      // a period (a whole year) holds every version current at some time in it
      const year = between.slice(0, 4);
      assert.deepEqual(await versions(`${s.fhir}/Medication/${a}/_history?_at=${year}`), [`${a}/1`, `${a}/2`, `${a}/3`]);
    });

    it('answers conditional reads with 304', async () => {
      const created = await request('POST', `${s.fhir}/Patient`, patient);
      const url = `${s.fhir}/Patient/${created.body.id}`;
      assert.equal((await request('GET', url, undefined, { 'if-none-match': 'W/"1"' })).status, 304);
      assert.equal((await request('GET', url, undefined, { 'if-none-match': 'W/"2"' })).status, 200);
      const later = new Date(Date.now() + 60_000).toUTCString();
      assert.equal((await request('GET', url, undefined, { 'if-modified-since': later })).status, 304);
    });

    it('refuses bad input with a 4xx OperationOutcome and writes nothing', async () => {
      const before = (await request('GET', `${s.fhir}/Patient?_summary=count`)).body.total;
      const cases: [string, string, unknown, number, string?][] = [
        ['POST', 'Patient', '{"resourceType": "Patient", ', 400],
        ['POST', 'Patient', { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, 400, 'resourceType'],
        ['POST', 'Patient', { resourceType: 'Patient', foo: 1 }, 400, 'Patient.foo'],
        ['POST', 'Patient', { resourceType: 'Patient', birthDate: '2020-13-45' }, 400, 'Patient.birthDate'],
        ['POST', 'Patient', { resourceType: 'Patient', active: 'yes' }, 400, 'Patient.active'],
        ['POST', 'Patient', [1, 2], 400],
        ['POST', 'Patient', { resourceType: 'Patient', name: "'; DROP TABLE \"Patient\"; --" }, 400, 'Patient.name'],
        ['PUT', 'Patient/abc', { resourceType: 'Patient', id: 'xyz' }, 400, 'Patient.id'],
        ['PUT', 'Patient/a$b', { resourceType: 'Patient', id: 'a$b' }, 400, 'Patient.id'],
        ['POST', 'NotAType', { resourceType: 'NotAType' }, 404],
      ];
      for (const [method, path, body, status, expression] of cases) {
        const res = await request(method, `${s.fhir}/${path}`, body);
        assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)}`);
        assert.equal(res.body.resourceType, 'OperationOutcome');
        if (expression) {
          assert.ok(
            res.body.issue.some((i: any) => i.expression?.some((e: string) => e.startsWith(expression))),
            `expected an issue at ${expression}: ${JSON.stringify(res.body.issue)}`,
          );
        }
      }
      assert.equal((await request('GET', `${s.fhir}/Patient?_summary=count`)).body.total, before);
      assert.equal((await request('GET', `${s.fhir}/Patient/${encodeURIComponent("x' OR '1'='1")}`)).status, 404);
    });

    it('rejects bodies over the size limit with 413', async () => {
      const big = { ...patient, text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(17 * 1024 * 1024)}</div>` } };
      const res = await request('POST', `${s.fhir}/Patient`, big);
      assert.equal(res.status, 413);
      assert.equal(res.body.resourceType, 'OperationOutcome');
    });

    it('publishes the CapabilityStatement', async () => {
      const res = await request('GET', `${s.fhir}/metadata`);
      assert.equal(res.status, 200);
      assert.equal(res.body.fhirVersion, '4.0.1');
      const obs = res.body.rest[0].resource.find((r: any) => r.type === 'Observation');
      assert.ok(obs.searchParam.some((p: any) => p.name === 'code-value-quantity'));
      assert.ok(obs.interaction.some((i: any) => i.code === 'history-instance'));
      assert.deepEqual(obs.operation.map((o: any) => o.name).sort(), ['lastn', 'stats', 'timeseries', 'validate']);
      assert.ok(obs.supportedProfile.includes('https://vigil.health/fhir/StructureDefinition/vigil-device-observation'));
      assert.ok(res.body.rest[0].resource.find((r: any) => r.type === 'Patient').operation.some((o: any) => o.name === 'everything'));
      // _revinclude values are listed as they are taken: by referring type and parameter, never a bare *
      const patientRevIncludes = res.body.rest[0].resource.find((r: any) => r.type === 'Patient').searchRevInclude;
      for (const value of ['Observation:subject', 'Observation:patient', 'Observation:*', 'Encounter:subject']) assert.ok(patientRevIncludes.includes(value), value);
      assert.ok(!patientRevIncludes.includes('*') && !patientRevIncludes.includes('Observation:code'));
      assert.ok(res.body.rest[0].resource.length >= 145);
    });

    it('emits one change event per committed write', async () => {
      const events: string[] = [];
      const unsubscribe = s.vigil.feed.subscribe((e) => events.push(`${e.interaction} ${e.resourceType}/${e.id}`));
      const created = (await request('POST', `${s.fhir}/Patient`, patient)).body;
      await request('PUT', `${s.fhir}/Patient/${created.id}`, created);
      await request('DELETE', `${s.fhir}/Patient/${created.id}`);
      await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient', foo: 1 });
      unsubscribe();
      assert.deepEqual(events, [`create Patient/${created.id}`, `update Patient/${created.id}`, `delete Patient/${created.id}`]);
    });
  });
}
