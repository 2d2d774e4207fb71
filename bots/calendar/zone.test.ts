import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addDays, dayBounds, dayOf, daysBetween, instantOf, isTimeZone } from './zone.ts';

const iso = (ms: number) => new Date(ms).toISOString();

describe('calendar/zone', () => {
  it('places an instant on its day in the zone', () => {
    assert.equal(dayOf(Date.parse('2026-03-10T23:30:00Z'), 'UTC'), '2026-03-10');
    assert.equal(dayOf(Date.parse('2026-03-10T23:30:00Z'), 'Europe/Berlin'), '2026-03-11');
    assert.equal(dayOf(Date.parse('2026-03-10T03:00:00Z'), 'America/New_York'), '2026-03-09');
  });

  it('finds the instant of a wall-clock time, across daylight saving time', () => {
    assert.equal(iso(instantOf('2026-01-15', '08:00', 'Europe/Berlin')), '2026-01-15T07:00:00.000Z');
    assert.equal(iso(instantOf('2026-07-15', '08:00:00', 'Europe/Berlin')), '2026-07-15T06:00:00.000Z');
    assert.equal(iso(instantOf('2026-07-15', '20:00', 'UTC')), '2026-07-15T20:00:00.000Z');
    // 29 March 2026: Berlin skips 02:00–03:00; 02:30 is read with the winter offset
    assert.equal(iso(instantOf('2026-03-29', '02:30', 'Europe/Berlin')), '2026-03-29T01:30:00.000Z');
    // 25 October 2026: Berlin shows 02:30 twice; the first is taken
    assert.equal(iso(instantOf('2026-10-25', '02:30', 'Europe/Berlin')), '2026-10-25T00:30:00.000Z');
    assert.throws(() => instantOf('2026-13-45', '08:00', 'UTC'), RangeError);
  });

  it('gives days of 23, 24 and 25 hours', () => {
    const hours = (day: string) => { const b = dayBounds(day, 'Europe/Berlin'); return (b.end - b.start) / 3_600_000; };
    assert.equal(hours('2026-03-29'), 23);
    assert.equal(hours('2026-06-01'), 24);
    assert.equal(hours('2026-10-25'), 25);
  });

  it('counts days and knows zones', () => {
    assert.equal(addDays('2026-02-28', 1), '2026-03-01');
    assert.equal(addDays('2026-03-01', -1), '2026-02-28');
    assert.equal(daysBetween('2026-02-20', '2026-03-02'), 10);
    assert.equal(isTimeZone('Europe/Berlin'), true);
    assert.equal(isTimeZone('Mars/Olympus'), false);
  });
});
