import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Timing } from '@medplum/fhirtypes';
import { parseTiming, slotState, slotsUntil, type Plan, type Slot } from './slots.ts';

const HOUR = 3_600_000;
const t = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16);

function plan(repeat: NonNullable<Timing['repeat']>): Plan {
  const p = parseTiming({ repeat });
  assert.ok(!('unsupported' in p), JSON.stringify(p));
  return p as Plan;
}
const view = (slots: Slot[]) => slots.map((s) => [iso(s.from), iso(s.remindAt), s.until === Infinity ? 'open-ended' : iso(s.until), s.count, s.label]);

describe('parseTiming', () => {
  it('understands times of day and a frequency per day or week', () => {
    assert.deepEqual(plan({ timeOfDay: ['20:00:00', '08:00:00', '08:00'] }), { kind: 'times', times: ['08:00', '20:00'], days: undefined, bounds: { start: undefined, end: undefined } });
    assert.deepEqual(plan({ frequency: 2, period: 1, periodUnit: 'd' }).kind, 'per-period');
    assert.deepEqual(plan({ period: 1, periodUnit: 'wk', boundsPeriod: { start: '2026-03-01T00:00:00Z' } }), {
      kind: 'per-period', unit: 'wk', frequency: 1, bounds: { start: t('2026-03-01T00:00:00Z'), end: undefined },
    });
  });

  it('refuses what it would misread', () => {
    const refused: [Timing, RegExp][] = [
      [{}, /no Timing.repeat/],
      [{ repeat: { when: ['MORN'], frequency: 1, period: 1, periodUnit: 'd' } }, /only timeOfDay/],
      [{ repeat: { count: 10, frequency: 1, period: 1, periodUnit: 'd' } }, /only timeOfDay/],
      [{ event: ['2026-03-01T08:00:00Z'], repeat: { timeOfDay: ['08:00:00'] } }, /only timeOfDay/],
      [{ repeat: { timeOfDay: ['8:00'] } }, /timeOfDay "8:00" is not HH:MM/],
      [{ repeat: { frequency: 1, period: 8, periodUnit: 'h' } }, /frequency per period 1 d or 1 wk/],
      [{ repeat: { frequency: 1, period: 2, periodUnit: 'd' } }, /frequency per period 1 d or 1 wk/],
      [{ repeat: { frequency: 1, period: 1, periodUnit: 'd', dayOfWeek: ['mon'] } }, /frequency per period 1 d or 1 wk/],
    ];
    for (const [timing, reason] of refused) assert.match((parseTiming(timing) as { unsupported: string }).unsupported, reason);
  });
});

describe('slotsUntil', () => {
  const twiceDaily = plan({ timeOfDay: ['08:00:00', '20:00:00'] });
  const options = { start: t('2026-03-08T00:00:00Z'), now: t('2026-03-10T12:00:00Z'), timeZone: 'UTC', graceMs: HOUR, lookbackDays: 4 };

  it('gives each time of day a window from the grace before it until the next opens', () => {
    assert.deepEqual(view(slotsUntil(twiceDaily, options)), [
      ['2026-03-08T07:00', '2026-03-08T09:00', '2026-03-08T19:00', 1, '08:00 on 2026-03-08'],
      ['2026-03-08T19:00', '2026-03-08T21:00', '2026-03-09T07:00', 1, '20:00 on 2026-03-08'],
      ['2026-03-09T07:00', '2026-03-09T09:00', '2026-03-09T19:00', 1, '08:00 on 2026-03-09'],
      ['2026-03-09T19:00', '2026-03-09T21:00', '2026-03-10T07:00', 1, '20:00 on 2026-03-09'],
      ['2026-03-10T07:00', '2026-03-10T09:00', '2026-03-10T19:00', 1, '08:00 on 2026-03-10'],
    ]);
  });

  it('reads times in the patient time zone', () => {
    const slots = slotsUntil(twiceDaily, { ...options, timeZone: 'Europe/Berlin' });
    assert.equal(iso(slots[0].remindAt), '2026-03-08T08:00'); // 08:00 + 1 h in Berlin (UTC+1)
  });

  it('keeps to the plan start, the bounds and the chosen weekdays', () => {
    assert.equal(slotsUntil(twiceDaily, { ...options, start: t('2026-03-10T00:00:00Z') }).length, 1);
    const bounded = plan({ timeOfDay: ['08:00:00'], boundsPeriod: { start: '2026-03-09T00:00:00Z', end: '2026-03-10T00:00:00Z' } });
    assert.deepEqual(slotsUntil(bounded, options).map((s) => s.label), ['08:00 on 2026-03-09']);
    // 2026-03-09 is a Monday
    const mondays = plan({ timeOfDay: ['08:00:00'], dayOfWeek: ['mon'] });
    assert.deepEqual(slotsUntil(mondays, { ...options, start: 0, lookbackDays: 14 }).map((s) => s.label), ['08:00 on 2026-03-02', '08:00 on 2026-03-09']);
    // a late reading for the Monday counts until the next Monday's window opens
    assert.equal(iso(slotsUntil(mondays, { ...options, start: 0, lookbackDays: 14 })[1].until), '2026-03-16T07:00');
  });

  it('gives a frequency per day the whole day, with the reminder the grace before its end', () => {
    const daily = plan({ frequency: 2, period: 1, periodUnit: 'd' });
    assert.deepEqual(view(slotsUntil(daily, { ...options, lookbackDays: 2 })), [
      ['2026-03-08T00:00', '2026-03-08T23:00', '2026-03-09T00:00', 2, '2026-03-08'],
      ['2026-03-09T00:00', '2026-03-09T23:00', '2026-03-10T00:00', 2, '2026-03-09'],
      ['2026-03-10T00:00', '2026-03-10T23:00', '2026-03-11T00:00', 2, '2026-03-10'],
    ]);
  });

  it('gives a frequency per week Monday to Sunday', () => {
    const weekly = plan({ frequency: 1, period: 1, periodUnit: 'wk' });
    assert.deepEqual(view(slotsUntil(weekly, { ...options, start: 0, lookbackDays: 10 })), [
      ['2026-02-23T00:00', '2026-03-01T23:00', '2026-03-02T00:00', 1, 'the week of 2026-02-23'],
      ['2026-03-02T00:00', '2026-03-08T23:00', '2026-03-09T00:00', 1, 'the week of 2026-03-02'],
      ['2026-03-09T00:00', '2026-03-15T23:00', '2026-03-16T00:00', 1, 'the week of 2026-03-09'],
    ]);
  });
});

describe('slotState', () => {
  const slot: Slot = { from: 0, remindAt: 10, until: 20, count: 2, label: 'x' };
  it('is taken with enough readings, else open, then remind, then missed', () => {
    assert.equal(slotState(slot, 2, 25), 'taken');
    assert.equal(slotState(slot, 1, 9), 'open');
    assert.equal(slotState(slot, 1, 10), 'remind');
    assert.equal(slotState(slot, 1, 19), 'remind');
    assert.equal(slotState(slot, 0, 20), 'missed');
  });
});
