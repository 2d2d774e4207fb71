import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Acvpu, QuantityMeasure, Reading } from '../vitals/reading.ts';
import { assessNews2, type News2Assessment, type News2Result } from './assess.ts';

const AT = Date.parse('2025-03-01T10:00:00Z');
const MINUTE = 60_000;

const quantity = (measure: QuantityMeasure, value: number, minutesBefore = 0, observationId = `${measure}-${minutesBefore}`): Reading => ({
  measure,
  value,
  unit: 'x',
  time: AT - minutesBefore * MINUTE,
  observationId,
});
const acvpu = (value: Acvpu, minutesBefore = 0): Reading => ({ measure: 'consciousness', value, time: AT - minutesBefore * MINUTE, observationId: `acvpu-${minutesBefore}` });

/** A normal set, five minutes old. */
const vitals = (): Reading[] => [
  quantity('respiratoryRate', 16, 5),
  quantity('spo2', 97, 5),
  quantity('systolic', 125, 5, 'bp-5'),
  quantity('diastolic', 80, 5, 'bp-5'),
  quantity('pulse', 72, 5),
  quantity('temperature', 36.8, 5),
];

function scored(assessment: News2Assessment): News2Result {
  assert.ok(assessment.scored, JSON.stringify(assessment));
  return assessment;
}

describe('assessNews2', () => {
  it('scores the five physiological inputs with consciousness and oxygen given, assuming nothing', () => {
    const result = scored(assessNews2([...vitals(), acvpu('alert', 5), quantity('oxygenFlow', 0, 5)], { at: AT }));
    assert.equal(result.score.total, 0);
    assert.deepEqual(result.assumptions, []);
    assert.equal(result.at, AT);
  });

  it('assumes alert when consciousness is missing, and says so', () => {
    const result = scored(assessNews2([...vitals(), quantity('oxygenFlow', 0, 5)], { at: AT }));
    assert.equal(result.score.subscores.consciousness, 0);
    assert.deepEqual(result.assumptions, [{ measure: 'consciousness', text: 'No consciousness (ACVPU) reading in the last 60 min: assumed alert.' }]);
  });

  it('assumes air when the oxygen flow is missing, and says so', () => {
    const result = scored(assessNews2([...vitals(), acvpu('alert')], { at: AT }));
    assert.equal(result.score.subscores.airOrOxygen, 0);
    assert.deepEqual(result.assumptions.map((a) => a.measure), ['oxygenFlow']);
  });

  it('scores oxygen when the flow is above 0', () => {
    const result = scored(assessNews2([...vitals(), quantity('oxygenFlow', 2, 5)], { at: AT }));
    assert.equal(result.score.subscores.airOrOxygen, 2);
  });

  it('scores the consciousness reading given', () => {
    const result = scored(assessNews2([...vitals(), acvpu('pain', 1)], { at: AT }));
    assert.deepEqual([result.score.subscores.consciousness, result.score.band], [3, 'low-medium']);
  });

  it('does not score without all five physiological inputs, and names those missing', () => {
    const withoutTwo = vitals().filter((r) => r.measure !== 'spo2' && r.measure !== 'temperature');
    assert.deepEqual(assessNews2(withoutTwo, { at: AT }), { scored: false, at: AT, missing: ['spo2', 'temperature'] });
    assert.deepEqual(assessNews2([], { at: AT }), {
      scored: false,
      at: AT,
      missing: ['respiratoryRate', 'spo2', 'systolic', 'pulse', 'temperature'],
    });
  });

  it('uses only readings within the window ending at `at`, edges included', () => {
    const inputs = vitals().filter((r) => r.measure !== 'pulse');
    assert.equal(assessNews2([...inputs, quantity('pulse', 72, 60)], { at: AT }).scored, true);
    const old = { ...quantity('pulse', 72), time: AT - 60 * MINUTE - 1 };
    assert.deepEqual(assessNews2([...inputs, old], { at: AT }), { scored: false, at: AT, missing: ['pulse'] });
    const later = { ...quantity('pulse', 72), time: AT + 1 };
    assert.deepEqual(assessNews2([...inputs, later], { at: AT }), { scored: false, at: AT, missing: ['pulse'] });
  });

  it('takes a configurable window', () => {
    const readings = [...vitals().filter((r) => r.measure !== 'pulse'), quantity('pulse', 72, 20)];
    assert.deepEqual(assessNews2(readings, { at: AT, windowMinutes: 15 }), { scored: false, at: AT, missing: ['pulse'] });
    const result = scored(assessNews2([...vitals(), acvpu('alert', 5)], { at: AT, windowMinutes: 15 }));
    assert.equal(result.assumptions[0]?.text, 'No inhaled oxygen flow reading in the last 15 min: assumed breathing air.');
  });

  it('takes the latest reading of each measure, whatever the order given', () => {
    const readings = [quantity('pulse', 135, 1, 'newest'), ...vitals(), quantity('pulse', 45, 30, 'oldest')];
    const result = scored(assessNews2(readings, { at: AT }));
    assert.equal(result.score.subscores.pulse, 3);
    assert.ok(result.used.some((r) => r.observationId === 'newest'));
    assert.ok(!result.used.some((r) => r.observationId === 'oldest' || r.observationId === 'pulse-5'));
  });

  describe('a streamed input scores by its latest measurement', () => {
    const SECOND = MINUTE / 60;
    /** SpO2 samples 10 s apart, the last one now, with the other inputs a normal set. */
    const streamed = (...values: number[]): Reading[] => [
      ...vitals().filter((r) => r.measure !== 'spo2'),
      ...values.map((v, i) => quantity('spo2', v, ((values.length - 1 - i) * 10 * SECOND) / MINUTE, `spo2-${i}`)),
    ];
    const spo2 = (readings: Reading[]) => scored(assessNews2(readings, { at: AT }));

    it('one stray sample among the newest five moves nothing', () => {
      const result = spo2(streamed(97, 97, 97, 96, 91));
      assert.equal(result.score.subscores.spo2, 0);
      assert.deepEqual(result.used.filter((r) => r.measure === 'spo2').map((r) => r.observationId), ['spo2-0', 'spo2-1', 'spo2-2', 'spo2-3', 'spo2-4']);
    });

    it('a fall held by most of the newest five scores', () => {
      assert.equal(spo2(streamed(97, 97, 97, 97, 97, 97, 91, 91, 91)).score.subscores.spo2, 3);
    });

    it('only the newest five count, and only those within 5 min of the newest', () => {
      assert.equal(spo2(streamed(91, 91, 91, 97, 97, 97, 97, 97)).score.subscores.spo2, 0);
      const spotChecks = [...vitals().filter((r) => r.measure !== 'spo2'), quantity('spo2', 97, 7), quantity('spo2', 97, 6), quantity('spo2', 91, 0, 'now')];
      const result = spo2(spotChecks);
      assert.equal(result.score.subscores.spo2, 3);
      assert.deepEqual(result.used.filter((r) => r.measure === 'spo2').map((r) => r.observationId), ['now']);
    });

    it('an even number of readings leaves out the oldest, so the value scored is one that was read', () => {
      assert.equal(spo2(streamed(91, 97, 91, 91)).score.subscores.spo2, 3);
      const twice = [...vitals().filter((r) => r.measure !== 'systolic'), quantity('systolic', 120, 1, 'first'), quantity('systolic', 95, 0, 'second')];
      const result = spo2(twice);
      assert.equal(result.score.subscores.systolic, 2);
      assert.deepEqual(result.used.filter((r) => r.measure === 'systolic').map((r) => r.observationId), ['second']);
    });
  });

  it('uses only NEWS2 inputs as evidence', () => {
    const result = scored(assessNews2([...vitals(), quantity('weight', 80, 5)], { at: AT }));
    assert.deepEqual(result.used.map((r) => r.measure).sort(), ['pulse', 'respiratoryRate', 'spo2', 'systolic', 'temperature']);
  });

  it('applies scale 2 when the target range is 88–92 %', () => {
    const readings = [...vitals().filter((r) => r.measure !== 'spo2'), quantity('spo2', 89, 5)];
    assert.equal(scored(assessNews2(readings, { at: AT })).score.subscores.spo2, 3);
    const copd = scored(assessNews2(readings, { at: AT, scale2: true })).score;
    assert.deepEqual([copd.scale, copd.subscores.spo2], [2, 0]);
  });
});
