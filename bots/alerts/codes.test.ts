import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { CodeSystem } from '@medplum/fhirtypes';
import { ALERT_DISPLAY, ALERT_SYSTEM } from './codes.ts';

describe('alert codes', () => {
  it('are those of the CodeSystem the store validates Flags against, with its displays', () => {
    const system = JSON.parse(readFileSync(new URL('../../fhir-profiles/CodeSystem-alert.json', import.meta.url), 'utf8')) as CodeSystem;
    assert.equal(system.url, ALERT_SYSTEM);
    assert.deepEqual(Object.fromEntries(system.concept?.map((c) => [c.code, c.display]) ?? []), ALERT_DISPLAY);
    assert.equal(system.count, system.concept?.length);
  });
});
