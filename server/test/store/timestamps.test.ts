import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isoTimestamp } from '../../src/store/database.ts';

describe('timestamptz text as ISO instants', () => {
  it('gives what Date gives, to the millisecond, for UTC text of any precision and for other zones', () => {
    const viaDate = (text: string) => new Date(text.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).toISOString();
    for (const text of ['2026-11-29 20:30:26+00', '2026-11-29 20:30:26.9+00', '2026-11-29 20:30:26.08144+00', '2026-11-29 20:30:26.999999+00', '1000-01-01 00:00:00+00', '9999-12-31 23:59:59.5+00']) {
      assert.equal(isoTimestamp(text), viaDate(text), text);
    }
    assert.equal(isoTimestamp('2026-11-29 20:30:26.123+00'), '2026-11-29T20:30:26.123Z');
    assert.equal(isoTimestamp('2026-11-29 21:30:26.123+01'), '2026-11-29T20:30:26.123Z');
    assert.equal(isoTimestamp('2026-11-29 16:00:00-04:30'), '2026-11-29T20:30:00.000Z');
    assert.equal(isoTimestamp('infinity'), 'infinity');
    assert.equal(isoTimestamp('-infinity'), '-infinity');
  });
});
