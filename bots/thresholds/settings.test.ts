import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Parameters } from '../runtime/manifest.ts';
import { evaluateThresholds, needsHistory } from './evaluate.ts';
import { AT_ONCE, DEFAULT_LIMITS, TWO_OF_LAST_THREE_IN_30_MIN, type ThresholdMeasure, type ThresholdReading } from './rules.ts';
import { THRESHOLD_DEFAULTS, thresholdSettings } from './settings.ts';

const T = Date.parse('2025-03-01T10:00:00Z');
const at = (measure: ThresholdMeasure, value: number, minutesBefore = 0): ThresholdReading => ({
  measure,
  value,
  unit: 'x',
  time: T - minutesBefore * 60_000,
  observationId: `${measure}-${value}-${minutesBefore}`,
});
const rules = (measure: ThresholdMeasure, value: number, parameters: Parameters, history: ThresholdReading[] = []) =>
  evaluateThresholds(at(measure, value), history, [], thresholdSettings(parameters).options).map((b) => `${b.rule}:${b.severity}`);

describe('thresholds settings', () => {
  it('names a parameter for every default limit, with the defaults as they are', () => {
    assert.equal(THRESHOLD_DEFAULTS['spo2-low-urgent'], 92);
    assert.equal(THRESHOLD_DEFAULTS['pulse-high-advice'], 111);
    assert.equal(THRESHOLD_DEFAULTS['temperature-low-urgent'], 35);
    assert.equal(Object.keys(THRESHOLD_DEFAULTS).length, DEFAULT_LIMITS.length + 3);
    const { options, ignored } = thresholdSettings(THRESHOLD_DEFAULTS);
    assert.deepEqual(options.limits, DEFAULT_LIMITS);
    assert.deepEqual(options.advice, TWO_OF_LAST_THREE_IN_30_MIN);
    assert.deepEqual(ignored, []);
  });

  it('moves a limit', () => {
    assert.deepEqual(rules('spo2', 91, {}), ['spo2-low:urgent']);
    assert.deepEqual(rules('spo2', 91, { 'spo2-low-urgent': 90 }), [], 'advice now, which needs persistence');
    assert.deepEqual(rules('spo2', 90, { 'spo2-low-urgent': 90 }), ['spo2-low:urgent']);
    assert.deepEqual(rules('pulse', 105, { 'pulse-high-advice': 100 }, [at('pulse', 104, 10)]), ['pulse-high:advice']);
  });

  it('sets the persistence of advice: 1 of 1 fires at once and reads no history', () => {
    const once = { adviceCount: 1, adviceOf: 1 };
    assert.deepEqual(thresholdSettings(once).options.advice, AT_ONCE);
    assert.deepEqual(rules('spo2', 94, once), ['spo2-low:advice']);
    assert.equal(needsHistory(at('spo2', 94), [], thresholdSettings(once).options), false);
    const threeOfFour = { adviceCount: 3, adviceOf: 4, adviceWithinMinutes: 60 };
    const twoBefore = [at('spo2', 93, 50), at('spo2', 93, 20)];
    assert.deepEqual(rules('spo2', 94, threeOfFour, twoBefore.slice(1)), []);
    assert.deepEqual(rules('spo2', 94, threeOfFour, twoBefore), ['spo2-low:advice']);
    assert.deepEqual(rules('spo2', 94, { ...threeOfFour, adviceWithinMinutes: 30 }, twoBefore), [], 'the reading 50 min before is out of the window');
  });

  it('gives the advice a Goal adds the persistence set, and a Goal still moves a limit set', () => {
    const { options } = thresholdSettings({ adviceCount: 1, adviceOf: 1, 'systolic-high-urgent': 170 });
    const target = [{ measure: 'systolic' as const, high: 140 }];
    assert.deepEqual(evaluateThresholds(at('systolic', 150), [], target, options).map((b) => b.severity), ['advice']);
    assert.deepEqual(evaluateThresholds(at('systolic', 170), [], target, options).map((b) => b.severity), ['urgent']);
    const copd = [{ measure: 'spo2' as const, low: 85, high: 92 }];
    const { options: lowered } = thresholdSettings({ 'spo2-low-urgent': 88 });
    assert.deepEqual(evaluateThresholds(at('spo2', 86), [], copd, lowered), [], 'within the range, past the limit set');
    assert.deepEqual(evaluateThresholds(at('spo2', 84), [], copd, lowered).map((b) => b.severity), ['urgent']);
  });

  it('ignores an invalid value for its built-in default, and says so', () => {
    const { options, ignored } = thresholdSettings({ 'spo2-low-urgent': 'ninety', 'pulse-high-urgent': 400, 'temperature-high-advice': 38.5 });
    assert.deepEqual(options.limits?.filter((r) => r.measure !== 'temperature'), DEFAULT_LIMITS.filter((r) => r.measure !== 'temperature'));
    assert.equal(options.limits?.find((r) => r.measure === 'temperature' && r.severity === 'advice')?.limit, 38.5);
    assert.deepEqual(ignored, [
      'spo2-low-urgent "ninety" ignored (a number from 50 to 100 %): the limit is 92 %',
      'pulse-high-urgent 400 ignored (a number from 1 to 300 /min): the limit is 131 /min',
    ]);
    const invalid: Parameters[] = [{ adviceCount: 0 }, { adviceCount: 1.5 }, { adviceCount: 3, adviceOf: 2 }, { adviceWithinMinutes: 0 }, { adviceWithinMinutes: 20_000 }, { adviceOf: true }];
    for (const persistence of invalid) {
      const settings = thresholdSettings(persistence);
      assert.deepEqual(settings.options.advice, TWO_OF_LAST_THREE_IN_30_MIN, JSON.stringify(persistence));
      assert.match(settings.ignored.join(), /^advice persistence .* ignored \(.*\): advice needs 2 of 3 within 30 min$/);
    }
  });
});
