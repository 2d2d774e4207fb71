import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const ref = (reference: string) => ({ reference });

const fixtures = [
  { resourceType: 'Organization', id: 'org1', name: 'Acme Hospital' },
  { resourceType: 'Practitioner', id: 'pr1', name: [{ family: 'House' }] },
  { resourceType: 'Patient', id: 'pa1', name: [{ family: 'Chen', given: ['Wei'] }], managingOrganization: ref('Organization/org1'), generalPractitioner: [ref('Practitioner/pr1')] },
  { resourceType: 'Patient', id: 'pa2', name: [{ family: 'Diaz' }] },
  { resourceType: 'Patient', id: 'pa3', name: [{ family: 'Evans' }] },
  { resourceType: 'Patient', id: 'pa4', name: [{ family: 'Chen' }] },
  { resourceType: 'Location', id: 'loc1', name: 'Chen Ward' },
  ...[['en1', 'pa1'], ['en2', 'pa2'], ['en3', 'pa3']].map(([id, patient]) => ({
    resourceType: 'Encounter', id, status: 'finished', class: { code: 'AMB' }, subject: ref(`Patient/${patient}`),
  })),
  ...[
    ['ob1', 'Patient/pa1', '8867-4', 'en1'],
    ['ob2', 'Patient/pa2', '8310-5', 'en2'],
    ['ob3', 'Location/loc1', '8867-4'],
    ['ob4', 'Patient/pa3', '8310-5', undefined, 'ob1'],
    ['ob5', 'Patient/pa1', '8310-5', 'en1'],
    ['ob6', 'Patient/pa2', '8867-4'],
    ['ob7', 'Patient/pa4', '8867-4'],
  ].map(([id, subject, code, encounter, derivedFrom]) => ({
    resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code }] }, subject: ref(subject as string),
    ...(encounter ? { encounter: ref(`Encounter/${encounter}`) } : {}),
    ...(derivedFrom ? { derivedFrom: [ref(`Observation/${derivedFrom}`)] } : {}),
  })),
  { resourceType: 'DiagnosticReport', id: 'dr1', status: 'final', code: { text: 'vitals' }, subject: ref('Patient/pa1'), result: [ref('Observation/ob1'), ref('Observation/ob5')] },
];

for (const driver of DRIVERS) {
  describe(`FHIR search: chains, _has, _include, _revinclude (${driver})`, () => {
    const s = useServer(driver);

    async function bundle(query: string): Promise<any> {
      const res = await request('GET', `${s.fhir}/${query}`);
      assert.equal(res.status, 200, `${query}: ${JSON.stringify(res.body)}`);
      return res.body;
    }
    const keys = (b: any, mode: string): string[] =>
      b.entry.filter((e: any) => e.search.mode === mode).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();
    async function expect(query: string, expected: string[]): Promise<void> {
      const b = await bundle(query);
      assert.deepEqual(b.entry.map((e: any) => e.resource.id).sort(), [...expected].sort(), query);
    }
    async function expectIncludes(query: string, matches: string[], included: string[]): Promise<void> {
      const b = await bundle(query);
      assert.deepEqual(keys(b, 'match'), [...matches].sort(), `${query} (match)`);
      assert.deepEqual(keys(b, 'include'), [...included].sort(), `${query} (include)`);
      for (const e of b.entry) assert.equal(e.fullUrl, `${s.fhir}/${e.resource.resourceType}/${e.resource.id}`);
    }
    async function status(query: string): Promise<number> {
      return (await request('GET', `${s.fhir}/${query}`)).status;
    }

    before(async () => {
      for (const r of fixtures) {
        const res = await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r);
        assert.equal(res.status, 201, JSON.stringify(res.body));
      }
      // a deleted target and a deleted source must not be found through chains, _has or includes
      assert.equal((await request('DELETE', `${s.fhir}/Patient/pa4`)).status, 200);
      assert.equal((await request('DELETE', `${s.fhir}/Observation/ob6`)).status, 200);
    });

    it('chains through a reference with and without a type', async () => {
      await expect('Observation?subject:Patient.name=chen', ['ob1', 'ob5']);
      await expect('Observation?subject.name=chen', ['ob1', 'ob3', 'ob5']);
      await expect('Observation?subject:Location.name=chen', ['ob3']);
      await expect('Observation?patient.name=diaz', ['ob2']);
      await expect('Observation?patient.family=chen&code=8310-5', ['ob5']);
      await expect('Observation?subject:Patient.name:exact=Chen', ['ob1', 'ob5']);
      await expect('Observation?subject:Patient.name=diaz,evans', ['ob2', 'ob4']);
      await expect('Observation?subject:Patient._id=pa3', ['ob4']);
      await expect('Observation?patient.name=nobody', []);
    });

    it('chains over two and three levels', async () => {
      await expect('Observation?encounter:Encounter.subject:Patient.family=diaz', ['ob2']);
      await expect('Observation?encounter.patient.family=chen', ['ob1', 'ob5']);
      await expect('Observation?patient.organization.name=acme', ['ob1', 'ob5']);
      await expect('Observation?patient.general-practitioner:Practitioner.name=house', ['ob1', 'ob5']);
      await expect('DiagnosticReport?result.patient.family=chen', ['dr1']);
      await expect('DiagnosticReport?result.patient.family=diaz', []);
    });

    it('_has, repeated and nested', async () => {
      await expect(`Patient?_has:Observation:patient:code=${LOINC}|8310-5`, ['pa1', 'pa2', 'pa3']);
      await expect('Patient?_has:Observation:patient:code=8867-4', ['pa1']);
      await expect('Patient?_has:Observation:patient:code=8867-4&_has:Observation:patient:code=8310-5', ['pa1']);
      await expect('Patient?_has:Observation:subject:code=8310-5&name=diaz', ['pa2']);
      await expect('Patient?_has:Encounter:subject:_has:Observation:encounter:code=8310-5', ['pa1', 'pa2']);
      await expect('Patient?_has:Encounter:subject:_has:Observation:encounter:code=8867-4', ['pa1']);
      await expect('Patient?_has:Observation:patient:_id=ob7', []);
      await expect('Organization?_has:Patient:organization:_has:Observation:patient:code=8310-5', ['org1']);
      await expect('Patient?_has:DiagnosticReport:subject:result.code=8310-5', ['pa1']);
    });

    it('_include with a target type, Source:*, * and :iterate', async () => {
      await expectIncludes('Observation?_id=ob1&_include=Observation:subject', ['Observation/ob1'], ['Patient/pa1']);
      await expectIncludes('Observation?_id=ob1,ob3&_include=Observation:subject', ['Observation/ob1', 'Observation/ob3'], ['Location/loc1', 'Patient/pa1']);
      await expectIncludes('Observation?_id=ob1,ob3&_include=Observation:subject:Patient', ['Observation/ob1', 'Observation/ob3'], ['Patient/pa1']);
      await expectIncludes('Observation?_id=ob1&_include=Observation:*', ['Observation/ob1'], ['Encounter/en1', 'Patient/pa1']);
      await expectIncludes('Observation?_id=ob4&_include=*', ['Observation/ob4'], ['Observation/ob1', 'Patient/pa3']);
      await expectIncludes('DiagnosticReport?_id=dr1&_include=DiagnosticReport:result&_include=Observation:encounter',
        ['DiagnosticReport/dr1'], ['Observation/ob1', 'Observation/ob5']);
      await expectIncludes('DiagnosticReport?_id=dr1&_include=DiagnosticReport:result&_include:iterate=Observation:encounter&_include:iterate=Encounter:subject',
        ['DiagnosticReport/dr1'], ['Encounter/en1', 'Observation/ob1', 'Observation/ob5', 'Patient/pa1']);
      await expectIncludes('Observation?_id=ob7&_include=Observation:subject', ['Observation/ob7'], []);
      await expectIncludes('Observation?_id=ob4&_include=Observation:patient&_include=Observation:subject', ['Observation/ob4'], ['Patient/pa3']);
    });

    it('_revinclude, with :iterate, skipping deleted resources', async () => {
      await expectIncludes('Patient?_id=pa1&_revinclude=Observation:subject', ['Patient/pa1'], ['Observation/ob1', 'Observation/ob5']);
      await expectIncludes('Patient?_id=pa2&_revinclude=Observation:subject', ['Patient/pa2'], ['Observation/ob2']);
      await expectIncludes('Patient?_id=pa1&_revinclude=Observation:patient&_revinclude:iterate=DiagnosticReport:result',
        ['Patient/pa1'], ['DiagnosticReport/dr1', 'Observation/ob1', 'Observation/ob5']);
      await expectIncludes('Encounter?_id=en1&_revinclude=Observation:encounter&_include=Encounter:subject',
        ['Encounter/en1'], ['Observation/ob1', 'Observation/ob5', 'Patient/pa1']);
      await expectIncludes('Observation?_id=ob1&_revinclude=Observation:derived-from', ['Observation/ob1'], ['Observation/ob4']);
      await expectIncludes('Patient?name=diaz,evans&_revinclude=Encounter:subject&_revinclude=Observation:subject:Patient',
        ['Patient/pa2', 'Patient/pa3'], ['Encounter/en2', 'Encounter/en3', 'Observation/ob2', 'Observation/ob4']);
    });

    it('included resources are not counted in total and a match is not repeated as an include', async () => {
      const b = await bundle('Observation?_id=ob1,ob4&_include=Observation:derived-from&_total=accurate');
      assert.equal(b.total, 2);
      assert.deepEqual(keys(b, 'match'), ['Observation/ob1', 'Observation/ob4']);
      assert.deepEqual(keys(b, 'include'), []);
    });

    it('rejects chains on non-references and unknown chain, _has and _include parts', async () => {
      for (const query of [
        'Observation?code.name=x',
        'Observation?subject:Patient.bogus=x',
        'Observation?subject:Bogus.name=x',
        'Observation?patient.name:bogus=x',
        'Patient?_has:Bogus:patient:code=x',
        'Patient?_has:Observation:code:code=x',
        'Patient?_has:Observation:patient:bogus=x',
        'Patient?_has:Observation:patient=x',
        'Observation?_include=Observation:bogus',
        'Observation?_include=Bogus:subject',
        'Observation?_include=Observation:subject:Bogus',
        'Observation?_include:bogus=Observation:subject',
        'Patient?_revinclude=Observation:code',
        'Patient?_revinclude=*',
        'Observation?derived-from.derived-from.derived-from.derived-from.derived-from.derived-from.code=x',
      ]) {
        assert.equal(await status(query), 400, query);
      }
    });
  });
}
