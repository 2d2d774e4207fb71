import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DRIVERS, UUID_V7, request, useServer } from '../support.ts';

const count = async (fhir: string, query: string): Promise<number> => (await request('GET', `${fhir}/${query}${query.includes('?') ? '&' : '?'}_summary=count`)).body.total;

for (const driver of DRIVERS) {
  describe(`batch and transaction Bundles (${driver})`, () => {
    const s = useServer(driver);

    // PostgreSQL's lock table is shared by its connections; PGlite (one connection) would only take long
    it('takes a transaction of 16,000 conditional creates, and again with nothing new', { skip: driver === 'pglite' }, async () => {
      const entry = Array.from({ length: 16_000 }, (_, i) => ({
        resource: { resourceType: 'Basic', code: { text: 'bulk' }, identifier: [{ system: 'urn:bulk', value: String(i) }] },
        request: { method: 'POST', url: 'Basic', ifNoneExist: `identifier=urn:bulk|${i}` },
      }));
      for (const created of ['201 Created', '200 OK']) {
        const res = await request('POST', s.fhir, { resourceType: 'Bundle', type: 'transaction', entry });
        assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
        assert.ok(res.body.entry.every((e: { response: { status: string } }) => e.response.status === created));
      }
      assert.equal(await count(s.fhir, 'Basic?code:text=bulk'), 16_000);
    });

    it('resolves urn:uuid fullUrls everywhere and answers in request order', async () => {
      const bundle = {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:0b1c0000-0000-4000-8000-000000000002',
            resource: {
              resourceType: 'Observation', status: 'final', code: { text: 'HR' },
              subject: { reference: 'urn:uuid:0b1c0000-0000-4000-8000-000000000001' },
              extension: [{ url: 'http://example.org/ext', valueReference: { reference: 'urn:uuid:0b1c0000-0000-4000-8000-000000000001' } }],
              contained: [{ resourceType: 'Provenance', id: 'p1', recorded: '2024-01-01T00:00:00Z', agent: [{ who: { reference: 'urn:uuid:0b1c0000-0000-4000-8000-000000000001' } }], target: [{ reference: 'urn:uuid:0b1c0000-0000-4000-8000-000000000001' }] }],
            },
            request: { method: 'POST', url: 'Observation' },
          },
          { fullUrl: 'urn:uuid:0b1c0000-0000-4000-8000-000000000001', resource: { resourceType: 'Patient', identifier: [{ system: 'urn:test', value: 'tx-1' }] }, request: { method: 'POST', url: 'Patient' } },
          { request: { method: 'GET', url: 'Patient?identifier=urn:test|tx-1' } },
        ],
      };
      const res = await request('POST', s.fhir, bundle);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.type, 'transaction-response');
      assert.deepEqual(res.body.entry.map((e: any) => e.response.status), ['201 Created', '201 Created', '200 OK']);
      const patientRef = res.body.entry[1].response.location.split('/_history')[0];
      assert.match(patientRef.slice('Patient/'.length), UUID_V7);
      const obs = (await request('GET', `${s.fhir}/${res.body.entry[0].response.location.split('/_history')[0]}`)).body;
      assert.equal(obs.subject.reference, patientRef);
      assert.equal(obs.extension[0].valueReference.reference, patientRef);
      assert.equal(obs.contained[0].agent[0].who.reference, patientRef);
      assert.equal(res.body.entry[2].resource.entry.length, 1, 'GET runs after the POSTs');
      assert.equal(res.body.entry[0].resource, undefined, 'written resources only on request');
      assert.equal((await request('GET', `${s.fhir}/Observation?subject=${patientRef}`)).body.entry.length, 1);
    });

    it('answers written resources with Prefer: return=representation', async () => {
      const entry = (family: string) => ({ resource: { resourceType: 'Patient', name: [{ family }] }, request: { method: 'POST', url: 'Patient' } });
      for (const type of ['transaction', 'batch']) {
        const res = await request('POST', s.fhir, { resourceType: 'Bundle', type, entry: [entry('One'), entry('Two')] }, { prefer: 'return=representation' });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.entry.map((e: any) => e.resource.name[0].family), ['One', 'Two'], type);
        assert.deepEqual(res.body.entry.map((e: any) => `Patient/${e.resource.id}/_history/${e.resource.meta.versionId}`), res.body.entry.map((e: any) => e.response.location));
      }
    });

    it('is atomic: an invalid entry names its index and leaves the store unchanged', async () => {
      const before = await count(s.fhir, 'Patient');
      const res = await request('POST', s.fhir, {
        resourceType: 'Bundle', type: 'transaction',
        entry: [
          { resource: { resourceType: 'Patient', gender: 'female' }, request: { method: 'POST', url: 'Patient' } },
          { resource: { resourceType: 'Patient', gender: 'male' }, request: { method: 'POST', url: 'Patient' } },
          { resource: { resourceType: 'Patient', birthDate: 'not-a-date' }, request: { method: 'POST', url: 'Patient' } },
        ],
      });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(res.body), /Bundle\.entry\[2\]/);
      assert.equal(await count(s.fhir, 'Patient'), before);
    });

    it('rolls back writes already made when a later entry fails in the database transaction', async () => {
      const p = (await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient', gender: 'other' })).body;
      const before = await count(s.fhir, 'Patient');
      const res = await request('POST', s.fhir, {
        resourceType: 'Bundle', type: 'transaction',
        entry: [
          { resource: { resourceType: 'Patient', gender: 'female' }, request: { method: 'POST', url: 'Patient' } },
          { request: { method: 'DELETE', url: `Patient/${p.id}` } },
          { resource: { ...p, gender: 'male' }, request: { method: 'PUT', url: `Patient/${p.id}`, ifMatch: 'W/"1"' } },
        ],
      });
      assert.equal(res.status, 412, JSON.stringify(res.body));
      assert.match(JSON.stringify(res.body), /Bundle\.entry\[2\]/);
      assert.equal(await count(s.fhir, 'Patient'), before);
      assert.equal((await request('GET', `${s.fhir}/Patient/${p.id}`)).status, 200, 'the delete was rolled back');
    });

    it('runs batch entries independently', async () => {
      const res = await request('POST', s.fhir, {
        resourceType: 'Bundle', type: 'batch',
        entry: [
          { resource: { resourceType: 'Patient', gender: 'female' }, request: { method: 'POST', url: 'Patient' } },
          { resource: { resourceType: 'Patient', gender: 'nonsense' }, request: { method: 'POST', url: 'Patient' } },
          { request: { method: 'GET', url: 'Patient/does-not-exist' } },
          { resource: { resourceType: 'Patient', gender: 'male' }, request: { method: 'POST', url: 'Patient' } },
        ],
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.type, 'batch-response');
      const statuses = res.body.entry.map((e: any) => e.response.status);
      assert.equal(statuses[0], '201 Created');
      assert.match(statuses[1], /^4/);
      assert.equal(res.body.entry[1].response.outcome.resourceType, 'OperationOutcome');
      assert.equal(statuses[2], '404');
      assert.equal(statuses[3], '201 Created');
    });

    it('resolves conditional references, refusing none or several matches', async () => {
      await request('POST', `${s.fhir}/Practitioner`, { resourceType: 'Practitioner', identifier: [{ system: 'urn:npi', value: 'one' }] });
      await request('POST', `${s.fhir}/Practitioner`, { resourceType: 'Practitioner', identifier: [{ system: 'urn:npi', value: 'two' }] });
      await request('POST', `${s.fhir}/Practitioner`, { resourceType: 'Practitioner', identifier: [{ system: 'urn:npi', value: 'two' }] });
      const tx = (ref: string) => ({
        resourceType: 'Bundle', type: 'transaction',
        entry: [{ resource: { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, participant: [{ individual: { reference: ref } }] }, request: { method: 'POST', url: 'Encounter' } }],
      });
      const ok = await request('POST', s.fhir, tx('Practitioner?identifier=urn:npi|one'));
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const enc = (await request('GET', `${s.fhir}/${ok.body.entry[0].response.location.split('/_history')[0]}`)).body;
      assert.match(enc.participant[0].individual.reference, /^Practitioner\/[0-9a-f-]{36}$/);
      const none = await request('POST', s.fhir, tx('Practitioner?identifier=urn:npi|zero'));
      assert.equal(none.status, 400);
      assert.match(JSON.stringify(none.body), /Practitioner\?identifier=urn:npi\|zero/);
      const many = await request('POST', s.fhir, tx('Practitioner?identifier=urn:npi|two'));
      assert.equal(many.status, 412);
    });

    it('refuses circular conditional references (each naming a resource only the other creates)', async () => {
      const before = await count(s.fhir, 'Organization');
      const res = await request('POST', s.fhir, {
        resourceType: 'Bundle', type: 'transaction',
        entry: [
          { resource: { resourceType: 'Organization', identifier: [{ system: 'urn:circle', value: 'org' }], partOf: { reference: 'Organization?identifier=urn:circle|parent' } }, request: { method: 'POST', url: 'Organization', ifNoneExist: 'identifier=urn:circle|org' } },
          { resource: { resourceType: 'Organization', identifier: [{ system: 'urn:circle', value: 'parent' }], partOf: { reference: 'Organization?identifier=urn:circle|org' } }, request: { method: 'POST', url: 'Organization', ifNoneExist: 'identifier=urn:circle|parent' } },
        ],
      });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(res.body), /Bundle\.entry\[0\].*Organization\?identifier=urn:circle\|parent/);
      assert.equal(await count(s.fhir, 'Organization'), before);
    });

    it('refuses malformed Bundles with the entry index', async () => {
      const p = { resourceType: 'Patient' };
      const cases: [unknown, RegExp][] = [
        [{ resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: 'urn:uuid:a', resource: p, request: { method: 'POST', url: 'Patient' } }, { fullUrl: 'urn:uuid:a', resource: p, request: { method: 'POST', url: 'Patient' } }] }, /entry\[1\]\.fullUrl/],
        [{ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:missing' } }, request: { method: 'POST', url: 'Observation' } }] }, /entry\[0\].*urn:uuid:missing/],
        [{ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: p, request: { method: 'FETCH', url: 'Patient' } }] }, /entry\[0\]\.request\.method/],
        [{ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Bundle', type: 'transaction' }, request: { method: 'POST', url: 'Bundle' } }] }, /entry\[0\] nests a transaction/],
        [{ resourceType: 'Bundle', type: 'collection' }, /Bundle\.type/],
      ];
      for (const [bundle, pattern] of cases) {
        const res = await request('POST', s.fhir, bundle);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.match(JSON.stringify(res.body), pattern);
      }
    });

    it('handles a 10,000-entry transaction', async () => {
      const entry = Array.from({ length: 10_000 }, (_, i) => ({
        fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        resource: i === 0
          ? { resourceType: 'Patient', identifier: [{ system: 'urn:big', value: 'p' }] }
          : { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000000' }, effectiveDateTime: new Date(1_700_000_000_000 + i * 1000).toISOString(), valueQuantity: { value: 60 + (i % 40), unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' } },
        request: { method: 'POST', url: i === 0 ? 'Patient' : 'Observation' },
      }));
      const res = await request('POST', s.fhir, { resourceType: 'Bundle', type: 'transaction', entry });
      assert.equal(res.status, 200);
      assert.equal(res.body.entry.length, 10_000);
      const patient = res.body.entry[0].response.location.split('/_history')[0];
      assert.equal(await count(s.fhir, `Observation?subject=${patient}`), 9_999);
    });
  });
}
