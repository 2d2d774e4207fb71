import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const TAGS = 'http://vigil.test/tags';
const MR = { coding: [{ system: V2_0203, code: 'MR' }], text: 'Medical record number' };

const patients = [
  {
    id: 'jose', name: [{ family: 'García', given: ['José', 'Luis'] }], gender: 'male', active: true, birthDate: '1950-02-03',
    address: [{ line: ['1 Main St'], city: 'Zürich', postalCode: '8001', country: 'CH' }],
    identifier: [{ system: 'http://hosp.org/mrn', value: 'MRN-1', type: MR }, { value: 'NOSYS-1' }],
    telecom: [{ system: 'email', value: 'jose@example.org' }],
    meta: {
      tag: [{ system: TAGS, code: 'vip' }, { system: TAGS, code: 'test' }],
      profile: ['http://vigil.test/StructureDefinition/patient-a'],
      security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
      source: 'http://vigil.test/source#ehr',
    },
  },
  {
    id: 'ada', name: [{ family: 'Okafor', given: ['Ada'] }], gender: 'female', active: false,
    address: [{ city: 'Lagos', country: 'NG' }],
    identifier: [
      { system: 'http://hosp.org/mrn', value: 'MRN-2', type: { coding: MR.coding } },
      { system: 'http://ssa.gov', value: 'MRN-1', type: { coding: [{ system: V2_0203, code: 'SS' }] } },
    ],
  },
  { id: 'zoe', name: [{ text: 'Zoë Smith-Jones', family: 'Smith-Jones', given: ['Zoë'] }], meta: { tag: [{ system: TAGS, code: 'test' }] } },
  { id: 'joseph', name: [{ family: 'Josephs', given: ['Joseph'] }], gender: 'male', active: true },
].map((p) => ({ resourceType: 'Patient', ...p }));

const obs = (id: string, extra: Record<string, unknown>) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'unspecified' }, ...extra });

const valueSets = [
  ['vs1', 'http://acme.org/fhir/ValueSet/vitals'],
  ['vs2', 'http://acme.org/fhir/ValueSet/vitals/adult'],
  ['vs3', 'http://acme.org/fhir/ValueSetOther'],
  ['vs4', 'http://other.org/vs'],
  ['vs5', 'http://acme.org/fhir/ValueSet/a_b%c'],
].map(([id, url]) => ({ resourceType: 'ValueSet', id, url, status: 'active' }));

for (const driver of DRIVERS) {
  describe(`FHIR search: string, token, reference, uri (${driver})`, () => {
    const s = useServer(driver);

    /** The ids of the matches, sorted, after checking the search answered 200. */
    async function ids(query: string): Promise<string[]> {
      const res = await request('GET', `${s.fhir}/${query}`);
      assert.equal(res.status, 200, `${query}: ${JSON.stringify(res.body)}`);
      return res.body.entry.filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();
    }
    async function expect(query: string, expected: string[]): Promise<void> {
      assert.deepEqual(await ids(query), [...expected].sort(), query);
    }

    before(async () => {
      const observations = [
        obs('o1', {
          code: { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }], text: 'HR' },
          subject: { reference: 'Patient/jose' }, encounter: { reference: 'Encounter/e1' },
        }),
        obs('o2', { code: { coding: [{ code: '8867-4' }] }, subject: { reference: `${s.fhir}/Patient/ada` } }),
        obs('o3', { code: { coding: [{ system: LOINC, code: '8310-5', display: 'Body temperature' }] }, subject: { reference: 'Group/g1' } }),
        obs('o4', { subject: { identifier: { system: 'http://hosp.org/mrn', value: 'MRN-9' } } }),
        obs('o5', { code: { coding: [{ system: 'http://acme.org/codes' }] }, subject: { reference: 'http://other.org/fhir/Patient/jose' } }),
        obs('o6', { code: { text: 'Blood pressure panel' } }),
      ];
      for (const r of [...patients, ...observations, ...valueSets]) {
        const res = await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r);
        assert.equal(res.status, 201, JSON.stringify(res.body));
      }
    });

    it('string: starts-with, case- and accent-insensitive', async () => {
      await expect('Patient?name=jose', ['jose', 'joseph']);
      await expect('Patient?name=JOSÉ', ['jose', 'joseph']);
      await expect('Patient?name=zoe', ['zoe']);
      await expect('Patient?name=smith', ['zoe']);
      await expect('Patient?name=jones', []);
      await expect('Patient?family=garcia', ['jose']);
      await expect('Patient?given=luis', ['jose']);
      await expect('Patient?name=okafor', ['ada']);
    });

    it('string :exact and :contains', async () => {
      await expect('Patient?name:exact=José', ['jose']);
      await expect('Patient?name:exact=jose', []);
      await expect('Patient?name:exact=Jos', []);
      await expect('Patient?family:exact=Smith-Jones', ['zoe']);
      await expect('Patient?name:contains=SEP', ['joseph']);
      await expect('Patient?name:contains=arc', ['jose']);
      await expect('Patient?name:contains=jones', ['zoe']);
    });

    it('string over Address parts', async () => {
      await expect('Patient?address=zurich', ['jose']);
      await expect('Patient?address=1 main', ['jose']);
      await expect('Patient?address=main', []);
      await expect('Patient?address:contains=main', ['jose']);
      await expect('Patient?address-city=lag', ['ada']);
      await expect('Patient?address-postalcode=8001', ['jose']);
      await expect('Patient?address-country=ng', ['ada']);
    });

    it('token: system|code, |code, system|, bare code', async () => {
      await expect(`Observation?code=${LOINC}|8867-4`, ['o1']);
      await expect('Observation?code=|8867-4', ['o2']);
      await expect('Observation?code=8867-4', ['o1', 'o2']);
      await expect(`Observation?code=${LOINC}|`, ['o1', 'o3']);
      await expect('Observation?code=http://acme.org/codes|', ['o5']);
      await expect('Patient?identifier=http://hosp.org/mrn|MRN-1', ['jose']);
      await expect('Patient?identifier=MRN-1', ['ada', 'jose']);
      await expect('Patient?identifier=|NOSYS-1', ['jose']);
      await expect('Patient?identifier=|MRN-1', []);
      await expect('Patient?identifier=http://ssa.gov|', ['ada']);
      await expect('Patient?email=jose@example.org', ['jose']);
      await expect('Patient?gender=male', ['jose', 'joseph']);
    });

    it('token :not includes resources without a value', async () => {
      await expect(`Observation?code:not=${LOINC}|8867-4`, ['o2', 'o3', 'o4', 'o5', 'o6']);
      await expect('Patient?gender:not=male', ['ada', 'zoe']);
      await expect('Patient?gender:not=male,female', ['zoe']);
      await expect(`Patient?_tag:not=${TAGS}|vip`, ['ada', 'joseph', 'zoe']);
    });

    it('token :text searches displays and texts', async () => {
      await expect('Observation?code:text=heart', ['o1']);
      await expect('Observation?code:text=hr', ['o1']);
      await expect('Observation?code:text=BLOOD pressure', ['o6']);
      await expect('Patient?identifier:text=medical record', ['jose']);
    });

    it('token :missing, booleans and identifier:of-type', async () => {
      await expect('Patient?active=true', ['jose', 'joseph']);
      await expect('Patient?active=false', ['ada']);
      await expect('Patient?active:missing=true', ['zoe']);
      await expect('Patient?gender:missing=false', ['ada', 'jose', 'joseph']);
      await expect('Patient?identifier:missing=true', ['joseph', 'zoe']);
      await expect(`Patient?identifier:of-type=${V2_0203}|MR|MRN-1`, ['jose']);
      await expect(`Patient?identifier:of-type=${V2_0203}|SS|MRN-1`, ['ada']);
      await expect(`Patient?identifier:of-type=${V2_0203}|MR|MRN-2`, ['ada']);
      await expect(`Patient?identifier:of-type=${V2_0203}|SS|MRN-2`, []);
    });

    it('_id, _tag, _profile, _security, _source', async () => {
      await expect('Patient?_id=jose', ['jose']);
      await expect('Patient?_id=jose,zoe,nope', ['jose', 'zoe']);
      await expect('Patient?_id:not=jose', ['ada', 'joseph', 'zoe']);
      await expect(`Patient?_tag=${TAGS}|vip`, ['jose']);
      await expect('Patient?_tag=vip', ['jose']);
      await expect(`Patient?_tag=${TAGS}|`, ['jose', 'zoe']);
      await expect('Patient?_profile=http://vigil.test/StructureDefinition/patient-a', ['jose']);
      await expect('Patient?_profile=http://vigil.test/StructureDefinition/patient', []);
      await expect('Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R', ['jose']);
      await expect('Patient?_security=R', ['jose']);
      await expect(`Patient?_source=${encodeURIComponent('http://vigil.test/source#ehr')}`, ['jose']);
      await expect('Patient?_tag:missing=true', ['ada', 'joseph']);
    });

    it('comma is OR, a repeated parameter is AND', async () => {
      await expect(`Patient?_tag=${TAGS}|vip,${TAGS}|test`, ['jose', 'zoe']);
      await expect(`Patient?_tag=${TAGS}|vip&_tag=${TAGS}|test`, ['jose']);
      await expect('Patient?gender=male&gender=female', []);
      await expect('Patient?gender=male&name=josep', ['joseph']);
      await expect(`Observation?code=${LOINC}|8867-4,${LOINC}|8310-5`, ['o1', 'o3']);
      await expect(`Observation?code=${LOINC}|&subject=Patient/jose`, ['o1']);
      await expect('Patient?name=zoe,okafor', ['ada', 'zoe']);
    });

    it('reference: Type/id, bare id, absolute URL, :Type', async () => {
      await expect('Observation?subject=Patient/jose', ['o1']);
      await expect('Observation?subject=jose', ['o1']);
      await expect('Observation?subject=Patient/ada', ['o2']);
      await expect(`Observation?subject=${s.fhir}/Patient/ada`, ['o2']);
      await expect(`Observation?subject=${s.fhir}/Patient/jose`, ['o1']);
      await expect('Observation?subject=http://other.org/fhir/Patient/jose', ['o5']);
      await expect('Observation?subject:Patient=jose', ['o1']);
      await expect('Observation?subject:Group=g1', ['o3']);
      await expect('Observation?subject:Patient=g1', []);
      await expect('Observation?subject=Patient/jose,Group/g1', ['o1', 'o3']);
      await expect('Observation?patient=jose', ['o1']);
      await expect('Observation?patient=Patient/ada', ['o2']);
      await expect('Observation?patient=g1', []);
    });

    it('reference :identifier and :missing', async () => {
      await expect('Observation?subject:identifier=http://hosp.org/mrn|MRN-9', ['o4']);
      await expect('Observation?subject:identifier=MRN-9', ['o4']);
      await expect('Observation?subject:identifier=http://other.org|MRN-9', []);
      await expect('Observation?encounter:missing=false', ['o1']);
      await expect('Observation?encounter:missing=true', ['o2', 'o3', 'o4', 'o5', 'o6']);
      await expect('Observation?encounter=Encounter/e1', ['o1']);
    });

    it('uri: exact, :below by path segment, :above', async () => {
      await expect('ValueSet?url=http://acme.org/fhir/ValueSet/vitals', ['vs1']);
      await expect('ValueSet?url=http://acme.org/fhir/ValueSet', []);
      await expect('ValueSet?url:below=http://acme.org/fhir/ValueSet', ['vs1', 'vs2', 'vs5']);
      await expect('ValueSet?url:below=http://acme.org/fhir/ValueSet/', ['vs1', 'vs2', 'vs5']);
      await expect('ValueSet?url:below=http://acme.org/fhir/ValueSet/vitals', ['vs1', 'vs2']);
      await expect('ValueSet?url:above=http://acme.org/fhir/ValueSet/vitals/adult/extra', ['vs1', 'vs2']);
      await expect('ValueSet?url:above=http://acme.org/fhir/ValueSet/vitals', ['vs1']);
      await expect('ValueSet?url:above=http://acme.org/fhir/ValueSet/aXb%25c/x', []);
      await expect(`ValueSet?url:above=${encodeURIComponent('http://acme.org/fhir/ValueSet/a_b%c/x')}`, ['vs5']);
      await expect('ValueSet?url:missing=false&url:below=http://other.org', ['vs4']);
    });
  });
}
