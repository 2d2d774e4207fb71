import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Acvpu } from '../vitals/reading.ts';
import {
  news2Band,
  scoreAirOrOxygen,
  scoreConsciousness,
  scoreNews2,
  scorePulse,
  scoreRespiratoryRate,
  scoreSpo2,
  scoreSystolic,
  scoreTemperature,
  type News2Inputs,
  type News2Parameter,
} from './score.ts';

/** [value, expected points]: both sides of every cut-off of the RCP chart, and the extremes. */
type Vectors = [number, number][];

function table(name: string, score: (value: number) => number, vectors: Vectors): void {
  describe(name, () => {
    for (const [value, points] of vectors) it(`${value} scores ${points}`, () => assert.equal(score(value), points));
  });
}

table('respiration rate', scoreRespiratoryRate, [
  [1, 3], [8, 3], [9, 1], [11, 1], [12, 0], [20, 0], [21, 2], [24, 2], [25, 3], [60, 3],
]);
table('SpO2 scale 1, on air', (v) => scoreSpo2(v, false, false), [
  [50, 3], [91, 3], [92, 2], [93, 2], [94, 1], [95, 1], [96, 0], [100, 0],
]);
table('SpO2 scale 1, on oxygen (the oxygen points are scored apart)', (v) => scoreSpo2(v, false, true), [
  [91, 3], [92, 2], [93, 2], [94, 1], [95, 1], [96, 0], [100, 0],
]);
table('SpO2 scale 2, on air', (v) => scoreSpo2(v, true, false), [
  [50, 3], [83, 3], [84, 2], [85, 2], [86, 1], [87, 1], [88, 0], [92, 0], [93, 0], [94, 0], [96, 0], [97, 0], [100, 0],
]);
table('SpO2 scale 2, on oxygen', (v) => scoreSpo2(v, true, true), [
  [50, 3], [83, 3], [84, 2], [85, 2], [86, 1], [87, 1], [88, 0], [92, 0], [93, 1], [94, 1], [95, 2], [96, 2], [97, 3], [100, 3],
]);
table('systolic blood pressure', scoreSystolic, [
  [40, 3], [90, 3], [91, 2], [100, 2], [101, 1], [110, 1], [111, 0], [219, 0], [220, 3], [300, 3],
]);
table('pulse', scorePulse, [
  [1, 3], [40, 3], [41, 1], [50, 1], [51, 0], [90, 0], [91, 1], [110, 1], [111, 2], [130, 2], [131, 3], [300, 3],
]);
table('temperature', scoreTemperature, [
  [25, 3], [35.0, 3], [35.1, 1], [36.0, 1], [36.1, 0], [38.0, 0], [38.1, 1], [39.0, 1], [39.1, 2], [45, 2],
]);

describe('rounding to the precision of the chart (half up)', () => {
  const cases: [string, () => number, number][] = [
    ['temperature 35.04 is charted 35.0', () => scoreTemperature(35.04), 3],
    ['temperature 35.05 is charted 35.1', () => scoreTemperature(35.05), 1],
    ['temperature 36.05 is charted 36.1', () => scoreTemperature(36.05), 0],
    ['temperature 38.04 is charted 38.0', () => scoreTemperature(38.04), 0],
    ['temperature 38.05 is charted 38.1', () => scoreTemperature(38.05), 1],
    ['temperature 39.05 is charted 39.1', () => scoreTemperature(39.05), 2],
    ['SpO2 91.49 is charted 91', () => scoreSpo2(91.49, false, false), 3],
    ['SpO2 91.5 is charted 92', () => scoreSpo2(91.5, false, false), 2],
    ['SpO2 93.49 is charted 93', () => scoreSpo2(93.49, false, false), 2],
    ['SpO2 93.5 is charted 94', () => scoreSpo2(93.5, false, false), 1],
    ['SpO2 92.5 on oxygen, scale 2, is charted 93', () => scoreSpo2(92.5, true, true), 1],
    ['SpO2 92.49 on oxygen, scale 2, is charted 92', () => scoreSpo2(92.49, true, true), 0],
    ['respiration rate 8.5 is charted 9', () => scoreRespiratoryRate(8.5), 1],
    ['respiration rate 20.5 is charted 21', () => scoreRespiratoryRate(20.5), 2],
    ['systolic 90.4 is charted 90', () => scoreSystolic(90.4), 3],
    ['systolic 90.5 is charted 91', () => scoreSystolic(90.5), 2],
    ['pulse 130.5 is charted 131', () => scorePulse(130.5), 3],
  ];
  for (const [name, score, points] of cases) it(name, () => assert.equal(score(), points));
});

describe('air or oxygen, consciousness', () => {
  it('air scores 0, oxygen 2', () => {
    assert.equal(scoreAirOrOxygen(false), 0);
    assert.equal(scoreAirOrOxygen(true), 2);
  });
  const acvpu: [Acvpu, number][] = [['alert', 0], ['confusion', 3], ['voice', 3], ['pain', 3], ['unresponsive', 3]];
  for (const [value, points] of acvpu) it(`${value} scores ${points}`, () => assert.equal(scoreConsciousness(value), points));
});

describe('news2Band', () => {
  const none: Record<News2Parameter, number> = {
    respiratoryRate: 0, spo2: 0, airOrOxygen: 0, systolic: 0, pulse: 0, consciousness: 0, temperature: 0,
  };
  const cases: [string, Partial<Record<News2Parameter, number>>, string][] = [
    ['0 is low', {}, 'low'],
    ['4 without a 3 is low', { respiratoryRate: 2, pulse: 2 }, 'low'],
    ['a single 3 with total 3 is low-medium', { consciousness: 3 }, 'low-medium'],
    ['a single 3 with total 4 is low-medium', { systolic: 3, pulse: 1 }, 'low-medium'],
    ['5 without a 3 is medium', { airOrOxygen: 2, respiratoryRate: 2, temperature: 1 }, 'medium'],
    ['5 with a 3 is medium, not low-medium', { spo2: 3, airOrOxygen: 2 }, 'medium'],
    ['6 is medium', { spo2: 2, airOrOxygen: 2, pulse: 2 }, 'medium'],
    ['7 is high', { spo2: 3, airOrOxygen: 2, pulse: 2 }, 'high'],
  ];
  for (const [name, points, band] of cases) {
    it(name, () => {
      const subscores = { ...none, ...points };
      assert.equal(news2Band(Object.values(subscores).reduce((a, b) => a + b, 0), subscores), band);
    });
  }
});

describe('scoreNews2', () => {
  const normal: News2Inputs = {
    respiratoryRate: 16, spo2: 97, onOxygen: false, systolic: 125, pulse: 72, consciousness: 'alert', temperature: 36.8, scale2: false,
  };
  it('scores a normal set 0, low, scale 1', () => {
    assert.deepEqual(scoreNews2(normal), {
      total: 0,
      band: 'low',
      scale: 1,
      subscores: { respiratoryRate: 0, spo2: 0, airOrOxygen: 0, systolic: 0, pulse: 0, consciousness: 0, temperature: 0 },
    });
  });
  it('adds every sub-score: the maximum is 20', () => {
    const worst = scoreNews2({ respiratoryRate: 30, spo2: 85, onOxygen: true, systolic: 85, pulse: 140, consciousness: 'voice', temperature: 34.5, scale2: false });
    assert.equal(worst.total, 20);
    assert.equal(worst.band, 'high');
  });
  it('scores SpO2 on scale 2 when asked, with the oxygen points apart', () => {
    const copd = scoreNews2({ ...normal, spo2: 97, onOxygen: true, scale2: true });
    assert.deepEqual([copd.scale, copd.subscores.spo2, copd.subscores.airOrOxygen, copd.total, copd.band], [2, 3, 2, 5, 'medium']);
    const sameOnScale1 = scoreNews2({ ...normal, spo2: 97, onOxygen: true });
    assert.deepEqual([sameOnScale1.subscores.spo2, sameOnScale1.total], [0, 2]);
  });
  it('reports a red score as low-medium', () => {
    assert.equal(scoreNews2({ ...normal, consciousness: 'confusion' }).band, 'low-medium');
  });
});
