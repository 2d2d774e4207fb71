import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Fifo } from '../../src/jobs/fifo.ts';

test('Fifo keeps first-in first-out order across its compactions, interleaved with pushes', () => {
  const fifo = new Fifo<number>();
  const taken: number[] = [];
  let next = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 300; i++) fifo.push(next++);
    for (let i = 0; i < 250; i++) taken.push(fifo.shift()!);
  }
  assert.equal(fifo.length, next - taken.length);
  while (fifo.length > 0) taken.push(fifo.shift()!);
  assert.deepEqual(taken, Array.from({ length: next }, (_, i) => i));
  assert.equal(fifo.shift(), undefined);
  assert.equal(fifo.peek(), undefined);
});
