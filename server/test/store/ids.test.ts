import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newResourceId } from '../../src/store/ids.ts';
import { UUID_V7 } from '../support.ts';

describe('resource ids', () => {
  it('are UUIDs of version 7 carrying the time they were made', () => {
    const before = Date.now();
    const id = newResourceId();
    assert.match(id, UUID_V7);
    const millis = parseInt(id.replaceAll('-', '').slice(0, 12), 16);
    assert.ok(millis >= before && millis <= Date.now(), `${millis} is not between ${before} and now`);
    assert.equal(newResourceId(0x0123456789ab).slice(0, 13), '01234567-89ab', 'the time comes first, most significant digit first');
  });

  it('sort in the order of the milliseconds they were made in, as text', () => {
    const t = Date.UTC(2026, 10, 29, 7, 0, 0);
    for (let i = 0; i < 1000; i++) {
      const earlier = newResourceId(t + i);
      const later = newResourceId(t + i + 1 + Math.floor(Math.random() * 1e9));
      assert.ok(earlier < later, `${earlier} sorts after ${later}`);
    }
  });

  it('differ when made in the same millisecond', () => {
    const t = Date.now();
    const ids = new Set(Array.from({ length: 100_000 }, () => newResourceId(t)));
    assert.equal(ids.size, 100_000);
  });
});
