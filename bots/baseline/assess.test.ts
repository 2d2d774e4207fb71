import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addDays } from '../calendar/zone.ts';
import { assessBaseline, METHODS, scoreDay, type BaselineAssessment, type DayValue } from './assess.ts';
import { mad, median, percentile } from '../vitals/robust.ts';

/** Consecutive days from 2026-03-01, one value each. */
const days = (values: number[], from = '2026-03-01'): DayValue[] => values.map((value, i) => ({ day: addDays(from, i), value, observationId: `d${i}` }));
/** A resting heart rate history with median 60 and MAD 1 (robust SD 1.4826). */
const history = [59, 60, 61, 60, 59, 61, 60, 62, 58, 60];
const SD = 1.4826;

function deviation(a: BaselineAssessment) {
  assert.equal(a.kind, 'deviation', JSON.stringify(a));
  return a as Extract<BaselineAssessment, { kind: 'deviation' }>;
}

describe('robust statistics', () => {
  it('median, MAD and nearest-rank percentile', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(mad([1, 2, 3, 4, 100]), 1);
    assert.equal(percentile([70, 50, 60, 80, 90, 55, 65, 75, 85, 95, 52], 10), 52);
    assert.equal(percentile([64, 61], 10), 61);
    assert.throws(() => median([]), RangeError);
    assert.throws(() => percentile([], 10), RangeError);
  });

  it('resting heart rate is the 10th percentile; the other measures the median', () => {
    const day = Array.from({ length: 100 }, (_, i) => 50 + i);
    assert.equal(METHODS.pulse.daily(day), 59);
    assert.equal(METHODS.systolic.daily([120, 140, 130]), 130);
  });
});

describe('assessBaseline', () => {
  it('is learning until 7 days precede the assessed one', () => {
    assert.deepEqual(assessBaseline('pulse', days([60, 60, 60, 60, 60, 60, 90])), { kind: 'learning', days: 6 });
    assert.equal(assessBaseline('pulse', days([60, 60, 60, 60, 60, 60, 60, 90])).kind, 'deviation');
    assert.deepEqual(assessBaseline('pulse', []), { kind: 'learning', days: 0 });
  });

  it('scores z = (value − median) / (1.4826 · MAD)', () => {
    const series = days([...history, 64]);
    const score = scoreDay('pulse', series, series[series.length - 1]);
    assert.ok(score);
    assert.equal(score.median, 60);
    assert.equal(score.sd, SD);
    assert.equal(score.days, 10);
    assert.ok(Math.abs(score.z - 4 / SD) < 1e-9);
  });

  it('fires on one day at |z| ≥ 3, not just below', () => {
    // 60 + 3 · 1.4826 = 64.4478
    const at = deviation(assessBaseline('pulse', days([...history, 64.45])));
    assert.equal(at.direction, 'high');
    assert.deepEqual(at.evidence.map((s) => s.observationId), ['d10']);
    assert.match(at.text, /^Resting heart rate 64 \/min on 2026-03-11 is 3\.0 robust SD above the personal baseline 60 \/min \(median of 10 days, robust SD 1\.5 \/min\)$/);
    assert.equal(assessBaseline('pulse', days([...history, 64.44])).kind, 'within');
    assert.equal(deviation(assessBaseline('pulse', days([...history, 55.5]))).direction, 'low');
  });

  it('fires on 2 of the last 3 days at |z| ≥ 2 in the same direction', () => {
    // 60 + 2 · 1.4826 = 62.97; the second deviating day has the first in its own baseline
    const two = deviation(assessBaseline('pulse', days([...history, 63.5, 60, 63.5])));
    assert.deepEqual(two.evidence.map((s) => s.day), ['2026-03-11', '2026-03-13']);
    assert.match(two.text, /^Resting heart rate above the personal baseline 60 \/min .* on 2 of the last 3 days \(2026-03-11: 64 \/min, z \+2\.4; 2026-03-13: 64 \/min, z \+2\.4\)$/);
    // still met on a normal day while two of the last three deviate; clear once only one does
    assert.equal(assessBaseline('pulse', days([...history, 63.5, 63.5, 60])).kind, 'deviation');
    assert.equal(assessBaseline('pulse', days([...history, 63.5, 60, 63.5, 60])).kind, 'within');
    // one high and one low day are not a persistent deviation
    assert.equal(assessBaseline('pulse', days([...history, 63.5, 56.5])).kind, 'within');
    // a deviating day and one three days later are not 2 of 3
    assert.equal(assessBaseline('pulse', days([...history, 63.5, 60, 60, 63.5])).kind, 'within');
  });

  it('counts calendar days: a gap is a day without evidence', () => {
    const series = [...days(history), { day: '2026-03-12', value: 63.5 }, { day: '2026-03-14', value: 63.5 }];
    assert.equal(assessBaseline('pulse', series).kind, 'deviation');
    const apart = [...days(history), { day: '2026-03-11', value: 63.5 }, { day: '2026-03-14', value: 63.5 }];
    assert.equal(assessBaseline('pulse', apart).kind, 'within');
  });

  it('uses only the 28 days before the assessed day', () => {
    // 28 days at 60, preceded by 20 days at 90 that must not count
    const series = days([...Array(20).fill(90), ...Array(28).fill(60), 60]);
    const last = assessBaseline('pulse', series);
    assert.equal(last.kind, 'within');
    assert.equal(last.kind === 'within' && last.latest.days, 28);
    assert.equal(last.kind === 'within' && last.latest.median, 60);
  });

  it('floors the robust SD at the measure resolution', () => {
    const weights = Array(10).fill(70);
    assert.equal(assessBaseline('weight', days([...weights, 70.3])).kind, 'within'); // z 1.5
    const fired = deviation(assessBaseline('weight', days([...weights, 70.61]))); // z 3.05
    assert.match(fired.text, /^Daily median body weight 70\.6 kg on .* is 3\.0 robust SD above/);
  });

  it('watches SpO2 only for falls', () => {
    const spo2 = [93, 94, 93, 92, 93, 94, 93, 93, 92, 94];
    assert.equal(assessBaseline('spo2', days([...spo2, 99])).kind, 'within');
    assert.equal(deviation(assessBaseline('spo2', days([...spo2, 89]))).direction, 'low');
  });

  it('reads the series in any order', () => {
    const series = days([...history, 64.45]).reverse();
    assert.equal(assessBaseline('pulse', series).kind, 'deviation');
  });
});
