import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Observation, Quantity } from '@medplum/fhirtypes';
import { LOINC, SNOMED, UCUM } from './codes.ts';
import { normaliseObservation } from './normalise.ts';
import type { Reading } from './reading.ts';

const WHEN = '2025-03-01T10:00:00Z';
const TIME = Date.parse(WHEN);

function observation(code: string, extra: Partial<Observation> = {}): Observation {
  return { resourceType: 'Observation', id: 'obs-1', status: 'final', code: { coding: [{ system: LOINC, code }] }, effectiveDateTime: WHEN, ...extra };
}

const quantity = (value: number, code: string): Quantity => ({ value, unit: code, system: UCUM, code });

function readings(o: Observation): Reading[] {
  const result = normaliseObservation(o);
  assert.equal(result.kind, 'readings', JSON.stringify(result));
  return result.kind === 'readings' ? result.readings : [];
}

function only(o: Observation): Reading {
  const [reading, ...rest] = readings(o);
  assert.equal(rest.length, 0);
  return reading;
}

function reason(o: Observation): string {
  const result = normaliseObservation(o);
  assert.equal(result.kind, 'rejected', JSON.stringify(result));
  return result.kind === 'rejected' ? result.reason : '';
}

describe('normaliseObservation: measures', () => {
  const cases: [string, Quantity, Reading['measure'], number, string][] = [
    ['9279-1', quantity(18, '/min'), 'respiratoryRate', 18, '/min'],
    ['2708-6', quantity(97, '%'), 'spo2', 97, '%'],
    ['59408-5', quantity(97, '%'), 'spo2', 97, '%'],
    ['8480-6', quantity(120, 'mm[Hg]'), 'systolic', 120, 'mm[Hg]'],
    ['8462-4', quantity(80, 'mm[Hg]'), 'diastolic', 80, 'mm[Hg]'],
    ['8867-4', quantity(72, '/min'), 'pulse', 72, '/min'],
    ['8310-5', quantity(37.2, 'Cel'), 'temperature', 37.2, 'Cel'],
    ['3151-8', quantity(2, 'L/min'), 'oxygenFlow', 2, 'L/min'],
    ['29463-7', quantity(70.4, 'kg'), 'weight', 70.4, 'kg'],
  ];
  for (const [code, valueQuantity, measure, value, unit] of cases) {
    it(`reads LOINC ${code} as ${measure}`, () => {
      assert.deepEqual(only(observation(code, { valueQuantity })), { measure, value, unit, time: TIME, observationId: 'obs-1' });
    });
  }

  it('reads the vital-signs SpO2 coding pair (2708-6 and 59408-5) once', () => {
    const o = observation('2708-6', { valueQuantity: quantity(95, '%') });
    o.code.coding?.push({ system: LOINC, code: '59408-5' });
    assert.equal(only(o).measure, 'spo2');
  });

  it('ignores codes Vigil does not score, and LOINC codes under another system', () => {
    assert.deepEqual(normaliseObservation(observation('2339-0', { valueQuantity: quantity(5, 'mmol/L') })), { kind: 'ignored' });
    const wrongSystem = observation('8867-4', { valueQuantity: quantity(72, '/min') });
    wrongSystem.code = { coding: [{ system: SNOMED, code: '8867-4' }] };
    assert.deepEqual(normaliseObservation(wrongSystem), { kind: 'ignored' });
    assert.deepEqual(normaliseObservation(observation('constructor')), { kind: 'ignored' });
  });
});

describe('normaliseObservation: status', () => {
  const pulse = { valueQuantity: quantity(72, '/min') };
  it('rejects entered-in-error, cancelled and registered Observations', () => {
    assert.equal(reason(observation('8867-4', { ...pulse, status: 'entered-in-error' })), 'Observation status is entered-in-error');
    assert.equal(reason(observation('8867-4', { ...pulse, status: 'cancelled' })), 'Observation status is cancelled');
    assert.equal(reason(observation('8867-4', { ...pulse, status: 'registered' })), 'Observation status is registered (no result yet)');
  });
  for (const status of ['preliminary', 'final', 'amended', 'corrected'] as const) {
    it(`accepts ${status}`, () => assert.equal(only(observation('8867-4', { ...pulse, status })).value, 72));
  }
  it('ignores an entered-in-error Observation of a measure Vigil does not score', () => {
    assert.equal(normaliseObservation(observation('2339-0', { status: 'entered-in-error' })).kind, 'ignored');
  });
});

describe('normaliseObservation: units', () => {
  const cases: [string, string, Quantity, number][] = [
    ['temperature °F', '8310-5', quantity(98.6, '[degF]'), 37],
    ['temperature °F at the NEWS2 cut-off', '8310-5', quantity(95, '[degF]'), 35],
    ['temperature K', '8310-5', quantity(310.15, 'K'), 37],
    ['temperature display unit °C only', '8310-5', { value: 36.6, unit: '°C' }, 36.6],
    ['temperature display unit °F only', '8310-5', { value: 100.4, unit: '°F' }, 38],
    ['SpO2 as a UCUM fraction', '2708-6', quantity(0.95, '1'), 95],
    ['SpO2 % with an annotation', '2708-6', quantity(93, '%{saturation}'), 93],
    ['systolic mmHg display spelling', '8480-6', { value: 130, unit: 'mmHg' }, 130],
    ['systolic kPa', '8480-6', quantity(13.3322387415, 'kPa'), 100],
    ['pulse {beats}/min', '8867-4', quantity(64, '{beats}/min'), 64],
    ['pulse /min', '8867-4', quantity(64, '/min'), 64],
    ['pulse 1/min', '8867-4', quantity(64, '1/min'), 64],
    ['pulse beats/min display', '8867-4', { value: 64, unit: 'beats/min' }, 64],
    ['pulse bpm display', '8867-4', { value: 64, unit: 'bpm' }, 64],
    ['respiratory rate {breaths}/min', '9279-1', quantity(16, '{breaths}/min'), 16],
    ['weight [lb_av]', '29463-7', quantity(100, '[lb_av]'), 45.359237],
    ['weight g', '29463-7', quantity(70500, 'g'), 70.5],
    ['weight lb display', '29463-7', { value: 100, unit: 'lb' }, 45.359237],
    ['oxygen flow mL/min', '3151-8', quantity(500, 'mL/min'), 0.5],
    ['a non-UCUM code falls back to the display unit', '8480-6', { value: 125, unit: 'mmHg', system: 'urn:vendor', code: 'MMHG' }, 125],
  ];
  for (const [name, code, valueQuantity, expected] of cases) {
    it(name, () => {
      const reading = only(observation(code, { valueQuantity }));
      assert.ok(reading.measure !== 'consciousness');
      assert.equal(reading.value, expected);
    });
  }

  it('never reads a % value of 1 or less as a fraction: it is implausible instead', () => {
    assert.equal(reason(observation('2708-6', { valueQuantity: quantity(0.95, '%') })), 'SpO2 0.95 % is implausible (outside 50–100 %)');
  });
  it('rejects units that cannot be converted, and missing units', () => {
    assert.equal(reason(observation('8867-4', { valueQuantity: quantity(1.2, 'Hz') })), "pulse unit 'Hz' cannot be converted to /min");
    assert.equal(reason(observation('8310-5', { valueQuantity: quantity(37, 'mm[Hg]') })), "temperature unit 'mm[Hg]' cannot be converted to Cel");
    assert.equal(reason(observation('8867-4', { valueQuantity: { value: 72 } })), 'pulse 72 has no unit');
    assert.equal(reason(observation('8867-4', { valueQuantity: quantity(72, 'constructor') })), "pulse unit 'constructor' cannot be converted to /min");
  });
  it('rejects a quantity without a value and a value that is not a Quantity', () => {
    assert.equal(reason(observation('8867-4', { valueQuantity: { unit: '/min' } })), 'pulse has no numeric value');
    assert.equal(reason(observation('8867-4', { valueString: '72' })), 'pulse value is not a Quantity');
  });
});

describe('normaliseObservation: plausibility', () => {
  // [LOINC, unit, last plausible, first implausible] on each side.
  const edges: [string, string, number, number][] = [
    ['9279-1', '/min', 1, 0],
    ['9279-1', '/min', 80, 81],
    ['2708-6', '%', 50, 49.9],
    ['2708-6', '%', 100, 100.1],
    ['8867-4', '/min', 1, 0],
    ['8867-4', '/min', 300, 301],
    ['8310-5', 'Cel', 25, 24.9],
    ['8310-5', 'Cel', 45, 45.1],
    ['8480-6', 'mm[Hg]', 40, 39],
    ['8480-6', 'mm[Hg]', 300, 301],
    ['8462-4', 'mm[Hg]', 20, 19],
    ['8462-4', 'mm[Hg]', 200, 201],
    ['3151-8', 'L/min', 0, -1],
    ['3151-8', 'L/min', 60, 61],
    ['29463-7', 'kg', 0.5, 0],
    ['29463-7', 'kg', 500, 501],
  ];
  for (const [code, unit, plausible, implausible] of edges) {
    it(`${code}: accepts ${plausible} ${unit}, rejects ${implausible} ${unit}`, () => {
      assert.equal(readings(observation(code, { valueQuantity: quantity(plausible, unit) })).length, 1);
      assert.match(reason(observation(code, { valueQuantity: quantity(implausible, unit) })), /is implausible \(outside/);
    });
  }

  it('states the limits and, after conversion, what was sent', () => {
    assert.equal(reason(observation('8867-4', { valueQuantity: quantity(0, '/min') })), 'pulse 0 /min is implausible (outside 1–300 /min)');
    assert.equal(
      reason(observation('8310-5', { valueQuantity: quantity(115, '[degF]') })),
      'temperature 46.1111111111 °C is implausible (outside 25–45 °C); sent as 115 [degF]',
    );
  });
});

describe('normaliseObservation: blood pressure panel', () => {
  const component = (code: string, value: number, unit = 'mm[Hg]') => ({ code: { coding: [{ system: LOINC, code }] }, valueQuantity: quantity(value, unit) });

  it('gives a systolic and a diastolic reading citing the panel', () => {
    const panel = observation('85354-9', { component: [component('8480-6', 142), component('8462-4', 91)] });
    assert.deepEqual(readings(panel), [
      { measure: 'systolic', value: 142, unit: 'mm[Hg]', time: TIME, observationId: 'obs-1' },
      { measure: 'diastolic', value: 91, unit: 'mm[Hg]', time: TIME, observationId: 'obs-1' },
    ]);
  });
  it('converts components in kPa', () => {
    const panel = observation('85354-9', { component: [component('8480-6', 16, 'kPa'), component('8462-4', 10, 'kPa')] });
    assert.deepEqual(readings(panel).map((r) => r.value), [120.009852135, 75.0061575846]);
  });
  it('skips a component declared absent and other components', () => {
    const panel = observation('85354-9', {
      component: [
        component('8480-6', 95),
        { code: { coding: [{ system: LOINC, code: '8462-4' }] }, dataAbsentReason: { coding: [{ code: 'not-performed' }] } },
        component('8478-0', 70), // mean arterial pressure: not scored
      ],
    });
    assert.deepEqual(readings(panel).map((r) => [r.measure, r.value]), [['systolic', 95]]);
  });
  it('rejects the whole panel when one component is wrong', () => {
    const panel = observation('85354-9', { component: [component('8480-6', 120), component('8462-4', 250)] });
    assert.equal(reason(panel), 'diastolic blood pressure 250 mmHg is implausible (outside 20–200 mmHg)');
  });
  it('rejects a diastolic not below the systolic', () => {
    const panel = observation('85354-9', { component: [component('8480-6', 90), component('8462-4', 90)] });
    assert.equal(reason(panel), 'diastolic 90 mmHg is not below systolic 90 mmHg');
  });
  it('rejects a panel without values', () => {
    assert.equal(reason(observation('85354-9')), 'blood pressure panel has no systolic or diastolic value');
  });
});

describe('normaliseObservation: consciousness', () => {
  const answers: [string, string, string][] = [
    [LOINC, 'LA9340-6', 'alert'],
    [LOINC, 'LA6560-2', 'confusion'],
    [LOINC, 'LA17108-4', 'voice'],
    [LOINC, 'LA17107-6', 'pain'],
    [LOINC, 'LA9343-0', 'unresponsive'],
    [SNOMED, '248234008', 'alert'],
    [SNOMED, '130987000', 'confusion'],
    [SNOMED, '300202002', 'voice'],
    [SNOMED, '450847001', 'pain'],
    [SNOMED, '422768004', 'unresponsive'],
  ];
  for (const [system, code, value] of answers) {
    it(`reads ${code} as ${value}`, () => {
      assert.deepEqual(only(observation('67775-7', { valueCodeableConcept: { coding: [{ system, code }] } })), {
        measure: 'consciousness',
        value,
        time: TIME,
        observationId: 'obs-1',
      });
    });
  }
  it('finds the ACVPU coding among others', () => {
    const valueCodeableConcept = { coding: [{ system: 'urn:vendor', code: 'A' }, { system: SNOMED, code: '300202002' }] };
    assert.equal(only(observation('67775-7', { valueCodeableConcept })).value, 'voice');
  });
  it('rejects an unknown answer and a missing one', () => {
    const unknown = { valueCodeableConcept: { coding: [{ system: LOINC, code: 'LA9999-9' }] } };
    assert.equal(reason(observation('67775-7', unknown)), 'consciousness value is not a recognised ACVPU code');
    assert.equal(reason(observation('67775-7')), 'consciousness value is not a recognised ACVPU code');
  });
});

describe('normaliseObservation: time, id and absent values', () => {
  const pulse = { valueQuantity: quantity(72, '/min'), effectiveDateTime: undefined };
  it('takes effectiveInstant, a period end (else its start), then issued', () => {
    assert.equal(only(observation('8867-4', { ...pulse, effectiveInstant: '2025-03-01T10:05:00Z' })).time, TIME + 300_000);
    const period = { start: '2025-03-01T09:00:00Z', end: '2025-03-01T09:30:00+01:00' };
    assert.equal(only(observation('8867-4', { ...pulse, effectivePeriod: period })).time, Date.parse('2025-03-01T08:30:00Z'));
    assert.equal(only(observation('8867-4', { ...pulse, effectivePeriod: { start: WHEN } })).time, TIME);
    assert.equal(only(observation('8867-4', { ...pulse, issued: WHEN })).time, TIME);
  });
  it('rejects readings that cannot be placed in time', () => {
    assert.equal(reason(observation('8867-4', pulse)), 'Observation has no effective time');
    assert.equal(reason(observation('8867-4', { ...pulse, effectiveDateTime: '2025-03-01' })), "effective time '2025-03-01' has no time of day");
    assert.equal(reason(observation('8867-4', { ...pulse, effectiveDateTime: '2025-13-45T99:00:00Z' })), "effective time '2025-13-45T99:00:00Z' is not a valid dateTime");
  });
  it('rejects an Observation without id, as it cannot be cited', () => {
    assert.equal(reason(observation('8867-4', { valueQuantity: quantity(72, '/min'), id: undefined })), 'Observation has no id to cite as evidence');
  });
  it('rejects an Observation with a dataAbsentReason', () => {
    const o = observation('2708-6', { dataAbsentReason: { coding: [{ code: 'error' }] } });
    assert.equal(reason(o), 'SpO2 has no value (dataAbsentReason error)');
  });
});
