import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Reading } from '../vitals/reading.ts';
import { evaluateThresholds, lookbackMs, metLimits, needsHistory } from './evaluate.ts';
import { DEFAULT_LIMITS, type Breach, type PersonalRange, type ThresholdMeasure, type ThresholdReading } from './rules.ts';

const T = Date.parse('2025-03-01T10:00:00Z');
const MINUTE = 60_000;
const DAY = 86_400_000;

const at = (measure: ThresholdMeasure, value: number, minutesBefore = 0, observationId = `${measure}-${value}-${minutesBefore}`): ThresholdReading => ({
  measure,
  value,
  unit: 'x',
  time: T - minutesBefore * MINUTE,
  observationId,
});

/** Severity of each breach, for the common assertion. */
const severities = (breaches: Breach[]) => breaches.map((b) => `${b.rule}:${b.severity}`);

/** A lone reading: urgent rules fire on it, advice rules need a second one. */
const alone = (measure: ThresholdMeasure, value: number, overrides: PersonalRange[] = []) =>
  severities(evaluateThresholds(at(measure, value), [], overrides));
/** The same value twice ten minutes apart: enough for advice. */
const twice = (measure: ThresholdMeasure, value: number, overrides: PersonalRange[] = []) =>
  severities(evaluateThresholds(at(measure, value), [at(measure, value, 10)], overrides));

describe('default limits: both sides of every cut-off', () => {
  // [measure, value, breaches of a lone reading, breaches of two such readings]
  const cases: [ThresholdMeasure, number, string[], string[]][] = [
    ['spo2', 92, ['spo2-low:urgent'], ['spo2-low:urgent']],
    ['spo2', 93, [], ['spo2-low:advice']],
    ['spo2', 94, [], ['spo2-low:advice']],
    ['spo2', 95, [], []],
    ['pulse', 131, ['pulse-high:urgent'], ['pulse-high:urgent']],
    ['pulse', 130, [], ['pulse-high:advice']],
    ['pulse', 111, [], ['pulse-high:advice']],
    ['pulse', 110, [], []],
    ['pulse', 41, [], []],
    ['pulse', 40, ['pulse-low:urgent'], ['pulse-low:urgent']],
    ['systolic', 180, ['systolic-high:urgent'], ['systolic-high:urgent']],
    ['systolic', 179, [], []],
    ['systolic', 91, [], []],
    ['systolic', 90, ['systolic-low:urgent'], ['systolic-low:urgent']],
    ['diastolic', 120, ['diastolic-high:urgent'], ['diastolic-high:urgent']],
    ['diastolic', 119, [], []],
    ['temperature', 39.1, ['temperature-high:urgent'], ['temperature-high:urgent']],
    ['temperature', 39.0, [], ['temperature-high:advice']],
    ['temperature', 38.1, [], ['temperature-high:advice']],
    ['temperature', 38.0, [], []],
    ['temperature', 35.1, [], []],
    ['temperature', 35.0, ['temperature-low:urgent'], ['temperature-low:urgent']],
    ['respiratoryRate', 25, ['respiratoryRate-high:urgent'], ['respiratoryRate-high:urgent']],
    ['respiratoryRate', 24, [], []],
    ['respiratoryRate', 9, [], []],
    ['respiratoryRate', 8, ['respiratoryRate-low:urgent'], ['respiratoryRate-low:urgent']],
  ];
  for (const [measure, value, once, two] of cases) {
    it(`${measure} ${value}`, () => {
      assert.deepEqual(alone(measure, value), once);
      assert.deepEqual(twice(measure, value), two);
    });
  }

  it('rounds to the table precision first', () => {
    assert.deepEqual(alone('spo2', 92.4), ['spo2-low:urgent']);
    assert.deepEqual(alone('spo2', 92.5), []);
    assert.deepEqual(alone('temperature', 39.05), ['temperature-high:urgent']);
    assert.deepEqual(alone('temperature', 35.05), []);
  });

  it('says what was breached', () => {
    assert.deepEqual(evaluateThresholds(at('spo2', 91, 0, 'o1'), []), [
      { rule: 'spo2-low', severity: 'urgent', evidence: ['o1'], text: 'SpO2 91 % is at or below 92 %' },
    ]);
    const [breach] = evaluateThresholds(at('temperature', 38.5, 0, 'b'), [at('temperature', 38.2, 5, 'a')]);
    assert.deepEqual(breach, {
      rule: 'temperature-high',
      severity: 'advice',
      evidence: ['a', 'b'],
      text: 'Temperature 38.5 °C is at or above 38.1 °C, in 2 of the last 2 readings within 30 min',
    });
  });

  it('does not judge consciousness', () => {
    assert.deepEqual(evaluateThresholds({ measure: 'consciousness', value: 'voice', time: T, observationId: 'c' }, []), []);
  });
});

describe('persistence: advice needs 2 of the last 3 readings within 30 min', () => {
  it('fires on 2 of 3', () => {
    const breaches = evaluateThresholds(at('pulse', 113, 0, 'c'), [at('pulse', 112, 20, 'a'), at('pulse', 85, 10, 'b')]);
    assert.deepEqual(breaches.map((b) => [b.severity, b.evidence]), [['advice', ['a', 'c']]]);
  });
  it('counts a reading exactly 30 min old, not one older', () => {
    assert.equal(evaluateThresholds(at('pulse', 113), [at('pulse', 112, 30)]).length, 1);
    assert.equal(evaluateThresholds(at('pulse', 113), [{ ...at('pulse', 112, 30), time: T - 30 * MINUTE - 1 }]).length, 0);
  });
  it('looks only at the last 3', () => {
    const recent = [at('pulse', 112, 25), at('pulse', 85, 20), at('pulse', 86, 10)];
    assert.deepEqual(evaluateThresholds(at('pulse', 113), recent), []);
  });
  it('does not fire when the new reading is within limits', () => {
    assert.deepEqual(evaluateThresholds(at('pulse', 80), [at('pulse', 112, 20), at('pulse', 115, 10)]), []);
  });
  it('reports only the most severe breach on a side', () => {
    assert.deepEqual(severities(evaluateThresholds(at('pulse', 140), [at('pulse', 115, 10)])), ['pulse-high:urgent']);
  });
  it('counts readings past the urgent limit towards advice when urgent itself does not fire', () => {
    const limits = DEFAULT_LIMITS.map((r) => (r.severity === 'urgent' ? { ...r, persistence: { count: 2, of: 3, withinMinutes: 30, spanMinutes: 0 } } : r));
    const breaches = evaluateThresholds(at('spo2', 91, 0, 'b'), [at('spo2', 94, 10, 'a')], [], { limits });
    assert.deepEqual(breaches.map((b) => [b.rule, b.severity, b.evidence]), [['spo2-low', 'advice', ['a', 'b']]]);
  });
});

describe('persistence on a stream: readings less than 5 min apart are one measurement, judged by their median', () => {
  /** A wearable's SpO2 every 2.5 s over the last `minutes`, its values cycling through `values`. */
  const stream = (minutes: number, values: number[], endMinutesBefore = 0): ThresholdReading[] =>
    Array.from({ length: (minutes * 60) / 2.5 }, (_, i) => at('spo2', values[i % values.length], endMinutesBefore + (i * 2.5) / 60, `s${endMinutesBefore}-${i}`)).reverse();
  const judge = (readings: ThresholdReading[]) => evaluateThresholds(readings[readings.length - 1], readings.slice(0, -1));

  it('does not add up a sleeping patient’s stray dips', () => {
    // 95–96 % with a dip to 94 % in two of every five samples: 40 % of the readings, and pairs of them back to back
    const asleep = stream(30, [94, 94, 96, 95, 96]);
    assert.equal(asleep[asleep.length - 1].value, 94);
    assert.deepEqual(judge(asleep), []);
  });
  it('fires on a desaturation sustained over two of the last three measurements', () => {
    const readings = [...stream(20, [96], 10), ...stream(10, [94, 93, 95])];
    assert.equal(readings[readings.length - 1].value, 94);
    const [breach] = judge(readings);
    assert.equal(breach.severity, 'advice');
    assert.deepEqual(breach.evidence, ['s0-120', 's0-0'], 'the newest reading at or below the limit of each measurement');
    assert.equal(breach.text, 'SpO2 94 % (the median of 120 readings in 5 min) is at or below 94 %, in 2 of the last 3 5-minute measurements within 30 min');
  });
  it('waits for the second measurement', () => {
    assert.deepEqual(judge([...stream(25, [96], 5), ...stream(5, [94, 93, 95])]), []);
  });
  it('still fires urgent on one reading', () => {
    const readings = [...stream(30, [96]), at('spo2', 91, -0.1, 'low')];
    assert.deepEqual(severities(judge(readings)), ['spo2-low:urgent']);
  });
  it('mixes spot checks and streamed readings', () => {
    const readings = [at('spo2', 93, 20, 'cuff'), ...stream(3, [94, 95, 93])];
    assert.deepEqual(judge(readings).map((b) => b.evidence), [['cuff', 's0-0']]);
  });
});

describe('duplicates and order', () => {
  it('does not count the new reading twice when the history already holds it', () => {
    const latest = at('pulse', 115, 0, 'x');
    assert.deepEqual(evaluateThresholds(latest, [latest]), []);
    assert.deepEqual(evaluateThresholds(latest, [at('pulse', 115, 0, 'same-reading-via-another-path')]), []);
  });
  it('does not let a duplicate push a real reading out of the last 3', () => {
    const dup = at('pulse', 85, 10, 'b');
    const breaches = evaluateThresholds(at('pulse', 116, 0, 'c'), [at('pulse', 115, 20, 'a'), dup, dup]);
    assert.deepEqual(breaches.map((b) => b.evidence), [['a', 'c']]);
  });
  it('sorts the history by time', () => {
    const breaches = evaluateThresholds(at('pulse', 116, 0, 'd'), [at('pulse', 85, 5, 'c'), at('pulse', 115, 40, 'a'), at('pulse', 114, 15, 'b')]);
    assert.deepEqual(breaches.map((b) => b.evidence), [['b', 'd']]);
  });
  it('leaves out readings taken after the new one', () => {
    assert.deepEqual(evaluateThresholds(at('pulse', 116, 10), [at('pulse', 115, 0)]), []);
  });
  it('uses the newest version of a corrected Observation', () => {
    assert.deepEqual(evaluateThresholds(at('pulse', 85, 0, 'x'), [at('pulse', 135, 0, 'x')]), []);
  });
  it('judges only the new reading’s measure', () => {
    const panel = [at('systolic', 185, 0, 'bp'), at('diastolic', 95, 0, 'bp')];
    assert.deepEqual(severities(evaluateThresholds(panel[1], panel)), []);
    assert.deepEqual(severities(evaluateThresholds(panel[0], panel)), ['systolic-high:urgent']);
  });
});

describe('personal ranges', () => {
  it('COPD SpO2 88–92 %: accepted values never alert, below 88 is urgent', () => {
    const copd: PersonalRange[] = [{ measure: 'spo2', low: 88, high: 92 }];
    assert.deepEqual(twice('spo2', 90, copd), []);
    assert.deepEqual(twice('spo2', 88, copd), []);
    assert.deepEqual(alone('spo2', 87, copd), ['spo2-low:urgent']);
    assert.deepEqual(twice('spo2', 95, copd), ['spo2-high:advice']);
    assert.equal(evaluateThresholds(at('spo2', 87), [], copd)[0]?.text, 'SpO2 87 % is outside the personal range 88–92 %');
  });
  it('a narrower range adds advice inside the default urgent limit', () => {
    const hf: PersonalRange[] = [{ measure: 'pulse', high: 120 }];
    assert.deepEqual(twice('pulse', 120, hf), []);
    assert.deepEqual(alone('pulse', 125, hf), []);
    assert.deepEqual(twice('pulse', 121, hf), ['pulse-high:advice']);
    assert.deepEqual(alone('pulse', 131, hf), ['pulse-high:urgent']);
    assert.equal(evaluateThresholds(at('pulse', 131), [], hf)[0]?.text, 'Pulse 131 /min is at or above 131 /min');
  });
  it('a wider range moves the urgent limit out to its edge', () => {
    const athlete: PersonalRange[] = [{ measure: 'pulse', low: 35, high: 140 }];
    assert.deepEqual(alone('pulse', 140, athlete), []);
    assert.deepEqual(alone('pulse', 141, athlete), ['pulse-high:urgent']);
    assert.deepEqual(alone('pulse', 38, athlete), []);
    assert.deepEqual(alone('pulse', 34, athlete), ['pulse-low:urgent']);
    assert.equal(evaluateThresholds(at('pulse', 34), [], athlete)[0]?.text, 'Pulse 34 /min is outside the personal range 35–140 /min');
  });
  it('a low edge above the urgent limit gives advice down to it', () => {
    const range: PersonalRange[] = [{ measure: 'temperature', low: 35.5 }];
    assert.deepEqual(twice('temperature', 35.5, range), []);
    assert.deepEqual(twice('temperature', 35.4, range), ['temperature-low:advice']);
    assert.deepEqual(alone('temperature', 35.0, range), ['temperature-low:urgent']);
    assert.equal(
      evaluateThresholds(at('temperature', 35.4), [at('temperature', 35.3, 5)], range)[0]?.text,
      'Temperature 35.4 °C is outside the personal range of at least 35.5 °C, in 2 of the last 2 readings within 30 min',
    );
  });
  it('leaves the other side and other measures on their defaults', () => {
    const range: PersonalRange[] = [{ measure: 'systolic', low: 100 }];
    assert.deepEqual(alone('systolic', 180, range), ['systolic-high:urgent']);
    assert.deepEqual(twice('systolic', 95, range), ['systolic-low:advice']);
    assert.deepEqual(alone('systolic', 90, range), ['systolic-low:urgent']);
    assert.deepEqual(alone('diastolic', 120, range), ['diastolic-high:urgent']);
  });
  it('applies to measures without default limits', () => {
    const range: PersonalRange[] = [{ measure: 'weight', high: 80 }];
    assert.deepEqual(twice('weight', 81, range), ['weight-high:advice']);
  });
});

describe('weight gain: more than 2 kg in 3 days', () => {
  const weight = (kg: number, daysBefore: number, id = `w${daysBefore}`): ThresholdReading => ({ ...at('weight', kg, 0, id), time: T - daysBefore * DAY });
  const gain = (latest: ThresholdReading, recent: Reading[]) => evaluateThresholds(latest, recent);

  it('fires on 2.1 kg, not on 2.0 kg', () => {
    assert.deepEqual(gain(weight(72.1, 0, 'now'), [weight(70, 2, 'then')]), [
      {
        rule: 'weight-gain',
        severity: 'advice',
        evidence: ['then', 'now'],
        text: 'Body weight 72.1 kg, up 2.1 kg from 70.0 kg within 3 days (limit: more than 2 kg)',
      },
    ]);
    assert.deepEqual(gain(weight(72, 0), [weight(70, 2)]), []);
  });
  it('is not fooled by binary float noise (72.1 − 70.1)', () => {
    assert.deepEqual(gain(weight(72.1, 0), [weight(70.1, 2)]), []);
  });
  it('counts a weight exactly 3 days old, not one older', () => {
    assert.equal(gain(weight(73, 0), [weight(70, 3)]).length, 1);
    assert.equal(gain(weight(73, 0), [{ ...weight(70, 3), time: T - 3 * DAY - 1 }]).length, 0);
  });
  it('measures from the lowest weight in the period', () => {
    const breaches = gain(weight(71.6, 0, 'now'), [weight(71, 2.5), weight(69.5, 1.5, 'dip'), weight(70, 1)]);
    assert.deepEqual(breaches.map((b) => b.evidence), [['dip', 'now']]);
  });
  it('ignores weight loss and a first weight', () => {
    assert.deepEqual(gain(weight(68, 0), [weight(71, 2)]), []);
    assert.deepEqual(gain(weight(90, 0), []), []);
  });
  it('takes another limit when configured', () => {
    const breaches = evaluateThresholds(weight(71.6, 0), [weight(70, 1)], [], { weightGain: { kg: 1.5, days: 2, severity: 'urgent' } });
    assert.deepEqual(severities(breaches), ['weight-gain:urgent']);
  });
});

describe('needsHistory', () => {
  const measures = [...new Set(DEFAULT_LIMITS.map((r) => r.measure))];
  const personal: PersonalRange[] = [{ measure: 'spo2', low: 88, high: 92 }, { measure: 'pulse', low: 35, high: 140 }];
  it('is false only where no history could change what the reading breaches', () => {
    let skipped = 0;
    for (const overrides of [[], personal]) {
      for (const measure of measures) {
        for (let value = 0; value <= 250; value += 0.5) {
          if (needsHistory(at(measure, value), overrides)) continue;
          skipped++;
          // the worst history there could be: every earlier reading breaches every limit of its side
          for (const past of [0, 400]) {
            const history = [1, 2, 3, 4].map((m) => at(measure, past, m));
            assert.deepEqual(evaluateThresholds(at(measure, value), history, overrides), evaluateThresholds(at(measure, value), [], overrides), `${measure} ${value} after ${past}`);
          }
        }
      }
    }
    assert.ok(skipped > 1000, 'most values within limits need no history');
  });
  it('is true for a reading past a limit that needs persistence, and for every weight', () => {
    assert.equal(needsHistory(at('spo2', 93)), true);
    assert.equal(needsHistory(at('spo2', 97)), false);
    assert.equal(needsHistory(at('spo2', 91)), false, 'urgent fires at once');
    assert.equal(needsHistory(at('spo2', 91), personal), false);
    assert.equal(needsHistory(at('weight', 70)), true);
  });
});

describe('lookbackMs', () => {
  it('spans the persistence windows of the limits in force, a personal range\'s included', () => {
    assert.equal(lookbackMs(at('systolic', 150)), 0, 'the default limits fire at once');
    const home: PersonalRange[] = [{ measure: 'systolic', high: 140 }, { measure: 'diastolic', high: 90 }, { measure: 'respiratoryRate', low: 12, high: 20 }];
    for (const measure of ['systolic', 'diastolic', 'respiratoryRate'] as const) assert.equal(lookbackMs(at(measure, 150), home), 30 * MINUTE, measure);
    assert.equal(lookbackMs(at('spo2', 93)), 30 * MINUTE);
  });
  it('spans the weight-gain period for a weight', () => {
    assert.equal(lookbackMs(at('weight', 70), [{ measure: 'weight', high: 80 }]), 3 * DAY);
    assert.equal(lookbackMs(at('weight', 70), [], { weightGain: { kg: 1.5, days: 5, severity: 'advice' } }), 5 * DAY);
  });
});

describe('metLimits: what the bot runs on', () => {
  it('a reading that meets no limit breaches nothing, whatever came before it', () => {
    const measures = [...new Set(DEFAULT_LIMITS.map((r) => r.measure))];
    const ranges: PersonalRange[][] = [[], [{ measure: 'pulse', low: 35, high: 100 }], [{ measure: 'spo2', low: 88, high: 92 }]];
    let within = 0;
    for (const measure of measures) {
      const limits = DEFAULT_LIMITS.filter((r) => r.measure === measure).map((r) => r.limit);
      const [lowest, highest] = [Math.min(...limits), Math.max(...limits)];
      // every breach there can be, shortly before
      const past = [at(measure, lowest - 5, 2), at(measure, lowest - 5, 8), at(measure, highest + 5, 3), at(measure, highest + 5, 9)];
      for (const overrides of ranges) {
        for (let value = lowest - 10; value <= highest + 10; value += 0.5) {
          const reading = at(measure, value);
          const met = metLimits(reading, overrides);
          assert.equal(met.length > 0, evaluateThresholds(reading, past, overrides).length > 0 || met.some((l) => l.persistence.count > 1), `${measure} ${value}`);
          if (met.length === 0) within++;
        }
      }
    }
    assert.ok(within > 100);
  });
});
