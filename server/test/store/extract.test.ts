import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { loadDefinitions } from '../../src/definitions.ts';
import { extractIndex, extractIndexByFhirPath, extractParams } from '../../src/store/extract.ts';
import { randomSlot, seeded } from './mutation.ts';
import { deviceObservations, syntheaSample } from './write-path-samples.ts';

const BASE = 'http://localhost:8103';

/** Compiled search-parameter paths extract exactly what medplum's FHIRPath evaluation extracts. */
describe('search columns from compiled paths', () => {
  let synthea: Resource[] = [];
  before(() => {
    loadDefinitions();
    synthea = syntheaSample(6);
  });

  const same = (r: Resource): void => {
    const expected = outcome(() => extractIndexByFhirPath(r, BASE));
    assert.deepEqual(outcome(() => extractIndex(r, BASE, JSON.stringify(r))), expected, `${r.resourceType}/${r.id}`);
    assert.deepEqual(outcome(() => extractIndex(r, BASE)), expected, `${r.resourceType}/${r.id} without its JSON`);
  };

  it('on device Observations and every resource of a sample of Synthea patients', () => {
    const resources = [...deviceObservations(), ...synthea];
    for (const r of resources) same(r);
    const row = extractIndex(deviceObservations()[0], BASE);
    assert.ok(Array.isArray(row.code) && row.patient === 'Patient/p-1' && row.date_start, 'the columns are filled');
    assert.ok(new Set(synthea.map((r) => r.resourceType)).size >= 15);
  });

  it('for chosen parameters alone, their columns as the whole row has them (the subscription index)', () => {
    const codes = new Set(['patient', 'subject', 'code', 'category']);
    let filled = 0;
    for (const r of [...deviceObservations(), ...synthea]) {
      const whole = extractIndex(r, BASE);
      const part = extractParams(r, BASE, codes);
      for (const code of codes) {
        assert.deepEqual(part[code], whole[code], `${r.resourceType}/${r.id} ${code}`);
        if (part[code] != null) filled++;
      }
      assert.equal(part.status ?? null, null, 'other columns are left out');
    }
    assert.ok(filled > 100);
  });

  it('on the unusual shapes: choice values, primitive extensions, contained resources, absolute references, foreign type prefixes', () => {
    const shapes: Resource[] = [
      { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueString: '2024-01-01', subject: { reference: `${BASE}/fhir/R4/Patient/a` } },
      { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueDateTime: '2024-01-01T10:00:00Z', _valueDateTime: { extension: [{ url: 'http://e.org/x', valueString: 'y' }] } } as Resource,
      { resourceType: 'Observation', status: 'final', code: { coding: [{ code: 'a' }] }, valuePeriod: { start: '2024-01-01' }, component: [{ code: { text: 'c' }, valueCodeableConcept: { text: 'v', coding: [{ system: 's', code: 'v' }] } }, { code: { text: 'd' }, valueQuantity: { value: 3, code: 'mm[Hg]', system: 'http://unitsofmeasure.org' } }] },
      { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueCodeableConcept: { text: 'T' }, valueQuantity: { value: 1 } } as Resource,
      { resourceType: 'Patient', birthDate: '1970-01-01', _birthDate: { extension: [{ url: 'http://e.org/t', valueString: '10:00' }] }, name: [{ family: 'Ünal', given: ['Ada'] }], telecom: [{ system: 'email', value: 'a@b.c' }, { system: 'phone', value: '1' }], contained: [{ resourceType: 'Organization', id: 'o', name: 'Org' }], managingOrganization: { reference: '#o' }, generalPractitioner: [{ reference: 'Practitioner/p', identifier: { system: 's', value: 'v' } }] } as Resource,
      { resourceType: 'Person', address: [{ city: 'Paris' }], link: [{ target: { reference: 'Patient/1' } }, { target: { reference: 'RelatedPerson/2' } }] },
      { resourceType: 'Bundle', type: 'document', identifier: { value: 'b' }, entry: [{ resource: { resourceType: 'Composition', status: 'final', type: { text: 't' }, date: '2024', author: [{ display: 'a' }], title: 't' } }] },
      { resourceType: 'Condition', subject: { reference: 'Patient/1' }, onsetAge: { value: 3, unit: 'a' }, abatementString: 'later', recordedDate: '2024-02' },
      { resourceType: 'ActivityDefinition', status: 'active', useContext: [{ code: { code: 'age' }, valueRange: { low: { value: 1 } } }, { code: { code: 'focus' }, valueCodeableConcept: { text: 'x' } }], relatedArtifact: [{ type: 'depends-on', resource: 'http://x.org/Library/a|1' }, { type: 'composed-of', resource: 'http://x.org/Library/b' }] },
      { resourceType: 'MedicationRequest', status: 'active', intent: 'order', subject: { reference: 'Patient/1' }, medicationCodeableConcept: { coding: [{ code: 'm' }] }, dosageInstruction: [{ timing: { event: ['2024-01-01'], repeat: { boundsPeriod: { end: '2024-12' } } } }] },
    ];
    for (const r of shapes) same({ id: 'x', meta: { versionId: '1', lastUpdated: '2026-01-01T00:00:00Z' }, ...r } as Resource);
  });

  it('on objects built in code, where a choice element set to undefined comes before the one that holds the value', () => {
    const row = extractIndex({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveDateTime: undefined, effectivePeriod: { start: '2024-01-01', end: '2024-01-02' } }, BASE);
    assert.deepEqual([row.date_start, row.date_end], ['2024-01-01T00:00:00.000Z', '2024-01-03T00:00:00.000Z']);
  });

  it('on damaged variants (wrong types, nulls, odd keys), where both evaluations must agree too', () => {
    const random = seeded(7);
    const originals = [...deviceObservations(), ...synthea.filter((_, i) => i % 7 === 0)];
    for (let n = 0; n < 3000; n++) same(damage(structuredClone(originals[n % originals.length]), random));
  });
});

/** The row, or the error message when extraction throws (both evaluations must throw alike). */
function outcome(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function damage(resource: Resource, random: () => number): Resource {
  const { obj, key } = randomSlot(resource, random);
  const options: unknown[] = [null, '', 0, 12.5, false, 'text', {}, [], [obj[key], obj[key]], { reference: 'Patient/z' }, { coding: [{ code: 'z' }] }, '2024-05'];
  const choice = Math.floor(random() * (options.length + 2));
  if (choice === options.length) obj[`_${key}`] = { extension: [{ url: 'u', valueString: 'v' }] };
  else if (choice === options.length + 1) obj[`${key}String`] = 'variant';
  else obj[key] = options[choice];
  return resource;
}
