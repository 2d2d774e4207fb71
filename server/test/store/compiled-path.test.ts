import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { parseFhirPath, toTypedValue, tryGetDataType, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { loadDefinitions } from '../../src/definitions.ts';
import { evaluate } from '../../src/store/compiled-path.ts';
import { randomSlot, seeded } from './mutation.ts';
import { deviceObservations, syntheaSample } from './write-path-samples.ts';

/**
 * Compiled FHIRPath gives what medplum's evaluation gives, on the R4 invariants (and, or, empty(),
 * exists(), variables…) of each resource and of its top-level elements. The search-parameter
 * expressions are covered by extract.test.ts.
 */
describe('compiled FHIRPath on R4 invariants', () => {
  let resources: Resource[] = [];
  before(() => {
    loadDefinitions();
    resources = [...deviceObservations(), ...syntheaSample(12)];
  });

  it('matches medplum on real resources and on damaged variants', () => {
    const random = seeded(3);
    const variants = resources.filter((_, i) => i % 3 === 0).map((r) => damage(structuredClone(r), random));
    let compared = 0;
    for (const resource of [...resources, ...variants]) {
      const schema = tryGetDataType(resource.resourceType);
      if (!schema) continue;
      const root = toTypedValue(resource);
      const variables = { '%resource': root, '%rootResource': root, '%context': root };
      const checks: [string, TypedValue][] = (schema.constraints ?? []).map((c) => [c.expression, root]);
      for (const [key, value] of Object.entries(resource)) {
        const element = schema.elements[key];
        const type = element?.type[0]?.code;
        if (!element || !type) continue;
        for (const v of Array.isArray(value) ? value : [value]) {
          for (const c of element.constraints ?? []) checks.push([c.expression, { type, value: v }]);
        }
      }
      for (const [expression, input] of checks) {
        const atom = parseFhirPath(expression);
        const context = { variables: { ...variables, '%context': input } };
        assert.deepEqual(outcome(() => evaluate(atom, context, [input])), outcome(() => atom.eval(context, [input])), `${expression} on ${resource.resourceType}/${resource.id}`);
        compared++;
      }
    }
    assert.ok(compared > 10_000, `only ${compared} evaluations compared`);
  });
});

/** Types and values, or that it threw (the messages differ: medplum names the expression). */
function outcome(fn: () => TypedValue[]): unknown {
  try {
    return fn().map((v) => ({ type: v.type, value: v.value }));
  } catch {
    return 'threw';
  }
}

function damage(resource: Resource, random: () => number): Resource {
  const { obj, key } = randomSlot(resource, random);
  const options: unknown[] = [null, '', 0, true, false, 'text', {}, [], [obj[key], obj[key]], { reference: '#x' }, { coding: [{ code: 'z' }] }, [{ resourceType: 'Basic', id: 'x' }]];
  const choice = Math.floor(random() * (options.length + 2));
  if (choice === options.length) obj[`_${key}`] = { extension: [{ url: 'u', valueString: 'v' }] };
  else if (choice === options.length + 1) obj.contained = [{ resourceType: 'Basic', id: 'x', meta: { versionId: '2' } }];
  else obj[key] = options[choice];
  return resource;
}
