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
