import assert from 'node:assert/strict';
import { test } from 'node:test';
import { groupByIdentity, mergeObservation } from '../../src/ingest/template/index.ts';
import { BUILTINS, CONTEXT, NOW, builtin, prng } from './helpers.ts';

/** Garbled and random messages through every built-in mapping: nothing throws, everything is accounted for. */

const MESSAGES = 3000;

const random = prng(0x5eed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const SEEDS: unknown[] = [
  { deviceId: 'hub-1', patientId: 'p1', timestamp: '2024-05-01T10:00:00Z', type: 'heart-rate', value: 72, unit: '/min' },
  { deviceId: 'hub-1', readings: [{ deviceId: 'hub-1', timestamp: '2024-05-01T10:00:00Z', type: 'systolic', value: 120, unit: 'mmHg' }] },
  { deviceId: 'hub-1', timestamp: '2024-05-01T10:00:00Z', endTimestamp: '2024-05-01T10:10:00Z', type: 'steps', value: 12, unit: 'steps' },
  {
    deviceId: 'omh-1',
    header: { schema_id: { namespace: 'omh', name: 'blood-pressure', version: '3.0' } },
    body: {
      systolic_blood_pressure: { value: 120, unit: 'mmHg' },
      diastolic_blood_pressure: { value: 80, unit: 'mmHg' },
      effective_time_frame: { date_time: '2024-05-01T10:00:00Z' },
    },
  },
  {
    deviceId: 'omh-1',
    dataPoints: [
      {
        header: { schema_id: { namespace: 'omh', name: 'step-count', version: '2.0' } },
        body: { step_count: { value: 10, unit: 'steps' }, effective_time_frame: { time_interval: { start_date_time: '2024-05-01T09:00:00Z', end_date_time: '2024-05-01T10:00:00Z' } } },
      },
    ],
  },
  {
    deviceId: 'hw-1',
    samplePoints: [
      { startTime: 1714557600000000000, endTime: 1714557600000000000, dataTypeName: 'com.huawei.instantaneous.heart_rate', value: [{ fieldName: 'bpm', floatValue: 70 }] },
      { startTime: 1714557000000, endTime: 1714557600000, dataTypeName: 'com.huawei.continuous.steps.delta', value: [{ fieldName: 'steps_delta', integerValue: 5 }] },
    ],
  },
];

const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  1e308,
  2 ** 63,
  'NaN',
  'Infinity',
  '',
  ' ',
  '72',
  '1e309',
  '0x1F',
  '2024-05-01',
  '2024-05-01T10:00:00',
  '2999-01-01T00:00:00Z',
  '2024-05-01T10:00:00+99:99',
  'x'.repeat(1000),
  '\u0000\uffff',
  [],
  {},
  [1, [2, [3]]],
  { value: { value: 1 } },
  '__proto__',
  'constructor',
];

function randomValue(depth: number): unknown {
  const r = random();
  if (depth > 4 || r < 0.5) return pick(ODD_VALUES);
  if (r < 0.75) return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(depth + 1));
  const keys = ['deviceId', 'timestamp', 'type', 'value', 'unit', 'header', 'body', 'samplePoints', 'dataTypeName', 'startTime', '__proto__', 'constructor'];
  return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, () => [pick(keys), randomValue(depth + 1)]));
}

/** Applies a handful of random edits anywhere in the value. */
function mutate(value: unknown, depth = 0): unknown {
  if (Array.isArray(value)) return value.filter(() => random() > 0.1).map((v) => mutate(v, depth + 1));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const r = random();
      if (r < 0.04) continue;
      out[r < 0.06 ? pick(['value', 'unit', 'type', 'deviceId', 'body']) : k] = r < 0.15 ? randomValue(depth) : mutate(v, depth + 1);
    }
    return out;
  }
  return random() < 0.1 ? randomValue(depth) : value;
}

function garble(value: unknown): unknown {
  const text = JSON.stringify(value).split('');
  for (let i = 0; i < 3; i++) text[Math.floor(random() * text.length)] = pick(['{', '}', '"', ',', ':', '1', 'x', ']']);
  try {
    return JSON.parse(text.join(''));
  } catch {
    return text.join('');
  }
}

function message(): unknown {
  const r = random();
  if (r < 0.15) return randomValue(0);
  if (r < 0.3) return garble(pick(SEEDS));
  if (r < 0.35) {
    let deep: unknown = pick(SEEDS);
    for (let i = 0; i < 20 + Math.floor(random() * 30); i++) deep = { wrap: deep };
    return deep;
  }
  return mutate(pick(SEEDS));
}

test(`fuzz: ${MESSAGES} garbled messages through every built-in mapping`, () => {
  const mappings = BUILTINS.map(builtin);
  let measured = 0;
  let rejected = 0;
  for (let i = 0; i < MESSAGES; i++) {
    const input = message();
    for (const mapping of mappings) {
      const result = mapping.normalize(input, { now: NOW });
      assert.ok(result.measurements.length + result.rejections.length > 0, `message ${i} produced nothing`);
      for (const r of result.rejections) assert.ok(typeof r.reason === 'string' && r.reason.length > 0);
      measured += result.measurements.length;
      rejected += result.rejections.length;
      for (const group of groupByIdentity(result.measurements)) {
        const built = mapping.toObservations(group.measurements, CONTEXT);
        for (const obs of built.observations) {
          assert.equal(obs.status, 'final');
          assert.ok(obs.effectiveDateTime ?? obs.effectivePeriod);
          assert.equal(mergeObservation(obs, obs).changed, false);
        }
      }
    }
  }
  // The seeds keep a fair share of messages mappable, so the fuzz exercises both outcomes.
  assert.ok(measured > 300, `measurements: ${measured}`);
  assert.ok(rejected > 3000, `rejections: ${rejected}`);
});
