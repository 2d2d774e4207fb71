import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { loadDefinitions } from '../../src/definitions.ts';
import { passesBaseStructure } from '../../src/store/base-structure.ts';
import { structureErrors } from '../../src/store/validation.ts';
import { randomSlot, seeded } from './mutation.ts';
import { deviceObservations, syntheaSample } from './write-path-samples.ts';

/**
 * The quick structure check may only say "valid" where @medplum/core's full validator finds no
 * error: checked on real resources and on thousands of broken variants of them.
 */
describe('quick R4 structure check', () => {
  let synthea: Resource[] = [];
  before(() => {
    loadDefinitions();
    synthea = syntheaSample(12);
  });

  it('accepts every device Observation and every Synthea resource, which the full validator accepts too', () => {
    for (const r of [...deviceObservations(), ...synthea]) {
      assert.deepEqual(structureErrors(r), [], `${r.resourceType}/${r.id}`);
      assert.ok(passesBaseStructure(r), `quick check refused ${r.resourceType}/${r.id}`);
    }
  });

  it('never accepts a broken variant that the full validator refuses', () => {
    const random = seeded(42);
    const originals = [...deviceObservations(), ...synthea.filter((_, i) => i % 5 === 0)];
    let refusedByFull = 0;
    let refusedByQuick = 0;
    for (let n = 0; n < 6000; n++) {
      const variant = mutate(structuredClone(originals[n % originals.length]), random);
      const errors = structureErrors(variant);
      if (errors.length) refusedByFull++;
      if (!passesBaseStructure(variant)) refusedByQuick++;
      else assert.deepEqual(errors, [], `quick check accepted ${JSON.stringify(variant).slice(0, 2000)}`);
    }
    // the variants must actually exercise the refusals
    assert.ok(refusedByFull > 2000, `only ${refusedByFull} variants were invalid`);
    assert.ok(refusedByQuick >= refusedByFull);
  });
});


/** One random change somewhere in the resource: wrong types, bad formats, empties, unknown or missing keys… */
function mutate(resource: Resource, random: () => number): Resource {
  const { obj, key } = randomSlot(resource, random);
  const value = obj[key];
  const pick = <T>(options: T[]): T => options[Math.floor(random() * options.length)];
  switch (Math.floor(random() * 14)) {
    case 0: obj[key] = null; break;
    case 1: obj[key] = pick(['', ' ', {}, []]); break;
    case 2: obj[key] = pick([42, 1.5, -1, 2 ** 40, true, 'text', Number.NaN]); break;
    case 3: obj[key] = pick(['2023-02-29', '2023-13-01', '2023-01-01T25:00:00Z', 'not a date', '2023-01-01T10:00:00', ' padded', 'a\u0001b', 'urn:uuid:XYZ']); break;
    case 4: obj[`${key}Bogus`] = value; break;
    case 5: delete obj[key]; break;
    case 6: obj[key] = Array.isArray(value) ? value[0] : [value]; break;
    case 7: obj[`_${key}`] = { extension: [{ url: 'http://example.org/x', valueString: 'x' }] }; break;
    case 8: obj.valueString = 'second choice'; obj.valueBoolean = false; break;
    case 9: obj.resourceType = 'Patient'; break;
    case 10: obj[key] = { resourceType: 'Basic', code: { text: 'x' } }; break;
    case 11: obj[key] = Array.isArray(value) ? [...value, ...value, ...value] : { value }; break;
    case 12: obj.extension = [pick([{ url: 'http://example.org/x' }, { url: 'http://example.org/x', valueString: 'x', extension: [{ url: 'y', valueInteger: 1 }] }, { valueString: 'x' }])]; break;
    default: obj[key] = typeof value === 'string' ? `${value}\t ` : typeof value === 'number' ? -value - 0.5 : { id: 'x' }; break;
  }
  return resource;
}
