import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { orderReadings } from './order.ts';
import type { QuantityMeasure, QuantityReading } from './reading.ts';

const pulse = (observationId: string, time: number, value: number, measure: QuantityMeasure = 'pulse'): QuantityReading => ({
  measure,
  value,
  unit: '/min',
  time,
  observationId,
});

const ids = (readings: QuantityReading[]) => readings.map((r) => r.observationId);

describe('orderReadings', () => {
  it('sorts by time', () => {
    assert.deepEqual(ids(orderReadings([pulse('c', 3, 70), pulse('a', 1, 71), pulse('b', 2, 72)])), ['a', 'b', 'c']);
  });
  it('keeps the given order for equal times', () => {
    assert.deepEqual(ids(orderReadings([pulse('b', 1, 70), pulse('a', 1, 71)])), ['b', 'a']);
  });
  it('counts an Observation once, in the version given last', () => {
    const result = orderReadings([pulse('a', 1, 70), pulse('b', 2, 72), pulse('a', 1, 75)]);
    assert.deepEqual(result.map((r) => [r.observationId, r.value]), [['a', 75], ['b', 72]]);
  });
  it('counts the same measure, time and value once whatever the id', () => {
    assert.deepEqual(ids(orderReadings([pulse('a', 1, 70), pulse('b', 1, 70), pulse('c', 1, 71)])), ['b', 'c']);
  });
  it('keeps the two readings of one blood-pressure panel', () => {
    const panel = [pulse('bp', 1, 120, 'systolic'), pulse('bp', 1, 80, 'diastolic')];
    assert.deepEqual(orderReadings(panel), panel);
  });
});
