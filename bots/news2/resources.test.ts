import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Reading } from '../vitals/reading.ts';
import type { News2Result } from './assess.ts';
import { news2Observation, news2RiskAssessment } from './resources.ts';
import { clinicalResponse, clinicalResponseText, news2AlertText } from './response.ts';
import { scoreNews2, type News2Inputs } from './score.ts';

const AT = Date.parse('2025-03-01T10:00:00Z');
const subject = { reference: 'Patient/p1' };
const reading = (measure: Reading['measure'], observationId: string): Reading =>
  measure === 'consciousness'
    ? { measure, value: 'alert', time: AT, observationId }
    : { measure, value: 1, unit: 'x', time: AT, observationId };

const inputs: News2Inputs = {
  respiratoryRate: 22, spo2: 95, onOxygen: true, systolic: 125, pulse: 95, consciousness: 'alert', temperature: 38.5, scale2: false,
};

function result(overrides: Partial<News2Inputs> = {}, assumptions: News2Result['assumptions'] = []): News2Result {
  return {
    scored: true,
    at: AT,
    score: scoreNews2({ ...inputs, ...overrides }),
    used: [
      reading('respiratoryRate', 'rr'),
      reading('spo2', 'spo2'),
      reading('oxygenFlow', 'o2'),
      reading('systolic', 'bp'),
      reading('pulse', 'hr'),
      reading('temperature', 'temp'),
    ],
    assumptions,
  };
}

const SCT = 'http://snomed.info/sct';

describe('news2Observation', () => {
  it('is a final survey Observation coded NEWS2 total score, with the total and band', () => {
    const o = news2Observation(result(), subject);
    assert.equal(o.status, 'final');
    assert.deepEqual(o.category?.[0]?.coding?.[0]?.code, 'survey');
    assert.deepEqual(o.code.coding?.[0], {
      system: SCT,
      code: '1104051000000101',
      display: 'Royal College of Physicians NEWS2 (National Early Warning Score 2) total score',
    });
    assert.equal(o.subject, subject);
    assert.equal(o.effectiveDateTime, '2025-03-01T10:00:00.000Z');
    assert.equal(o.valueInteger, 7); // RR 2, SpO2 1, oxygen 2, pulse 1, temperature 1
    assert.deepEqual(o.interpretation?.[0]?.coding?.[0], {
      system: 'https://vigil.health/fhir/CodeSystem/news2-risk',
      code: 'high',
      display: 'High clinical risk',
    });
  });

  it('has one component per sub-score, in chart order, with its SNOMED CT code', () => {
    const o = news2Observation(result(), subject);
    assert.deepEqual(
      o.component?.map((c) => [c.code.coding?.[0]?.system, c.code.coding?.[0]?.code, c.valueInteger]),
      [
        [SCT, '1104301000000104', 2],
        [SCT, '1104311000000102', 1],
        [SCT, '1104331000000105', 2],
        [SCT, '1104341000000101', 0],
        [SCT, '1104351000000103', 1],
        [SCT, '1104361000000100', 0],
        [SCT, '1104371000000107', 1],
      ],
    );
  });

  it('codes the SpO2 sub-score as scale 2 when scale 2 was used', () => {
    const o = news2Observation(result({ scale2: true }), subject);
    assert.equal(o.component?.[1]?.code.coding?.[0]?.code, '1104321000000108');
  });

  it('is derived from each input Observation once', () => {
    const r = result();
    r.used.push(reading('consciousness', 'bp'));
    assert.deepEqual(news2Observation(r, subject).derivedFrom?.map((d) => d.reference), [
      'Observation/rr', 'Observation/spo2', 'Observation/o2', 'Observation/bp', 'Observation/hr', 'Observation/temp',
    ]);
  });

  it('notes the assumptions made, and has no note without them', () => {
    const text = 'No consciousness (ACVPU) reading in the last 60 min: assumed alert.';
    assert.deepEqual(news2Observation(result({}, [{ measure: 'consciousness', text }]), subject).note, [{ text }]);
    assert.equal('note' in news2Observation(result(), subject), false);
  });
});

describe('news2RiskAssessment', () => {
  it('is a final NEWS2 RiskAssessment of the subject, with the band as qualitative risk', () => {
    const ra = news2RiskAssessment(result({ temperature: 37 }), subject);
    assert.equal(ra.status, 'final');
    assert.equal(ra.subject, subject);
    assert.equal(ra.occurrenceDateTime, '2025-03-01T10:00:00.000Z');
    assert.equal(ra.method?.text, 'NEWS2');
    assert.equal(ra.method?.coding?.[0]?.code, '1104051000000101');
    assert.deepEqual(ra.prediction?.[0]?.qualitativeRisk?.coding?.map((c) => [c.system, c.code]), [
      ['https://vigil.health/fhir/CodeSystem/news2-risk', 'medium'],
      ['http://terminology.hl7.org/CodeSystem/risk-probability', 'moderate'],
    ]);
    assert.equal(ra.prediction?.[0]?.rationale, 'NEWS2 total 6');
    assert.equal(ra.basis?.length, 6);
    assert.match(ra.mitigation ?? '', /^Key threshold for urgent response; monitoring at least hourly\./);
  });
});

describe('clinical response', () => {
  const cases: [string, Partial<News2Inputs>, string, string][] = [
    ['total 0', { respiratoryRate: 16, spo2: 97, onOxygen: false, pulse: 72, temperature: 37 }, 'Ward-based response', 'at least 12-hourly'],
    ['total 1–4', { respiratoryRate: 16, spo2: 97, onOxygen: false, temperature: 37 }, 'Ward-based response', 'at least every 4–6 hours'],
    ['a single 3', { respiratoryRate: 16, spo2: 97, onOxygen: false, pulse: 72, temperature: 37, consciousness: 'confusion' }, 'Urgent ward-based response', 'at least hourly'],
    ['total 5–6', { temperature: 37 }, 'Key threshold for urgent response', 'at least hourly'],
    ['total 7 or more', {}, 'Emergency response', 'continuous monitoring of vital signs'],
  ];
  for (const [name, overrides, response, monitoring] of cases) {
    it(`${name}: ${response}`, () => {
      const r = clinicalResponse(scoreNews2({ ...inputs, ...overrides }));
      assert.deepEqual([r.response, r.monitoring], [response, monitoring]);
    });
  }

  it('writes the alert text: score, sub-scores, assumptions, response', () => {
    const text = 'No inhaled oxygen flow reading in the last 60 min: assumed breathing air.';
    const r = result({ onOxygen: false }, [{ measure: 'oxygenFlow', text }]);
    assert.equal(
      news2AlertText(r),
      [
        'NEWS2 5 (medium risk, SpO2 scale 1): respiration rate 2, SpO2 1, air or oxygen 0, systolic BP 0, pulse 1, consciousness 0, temperature 1.',
        text,
        clinicalResponseText(r.score),
      ].join('\n'),
    );
  });
});
