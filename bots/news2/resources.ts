import type { Coding, Observation, Patient, Reference, RiskAssessment } from '@medplum/fhirtypes';
import type { News2Result } from './assess.ts';
import { BAND_DISPLAY, NEWS2_RISK_SYSTEM, NEWS2_SUBSCORE, NEWS2_TOTAL, RISK_PROBABILITY } from './codes.ts';
import { clinicalResponseText } from './response.ts';
import { NEWS2_PARAMETERS, type News2Band } from './score.ts';

/** Each input Observation once, though a blood-pressure panel may have given two readings. */
function evidence(result: News2Result): Reference<Observation>[] {
  return [...new Set(result.used.map((r) => r.observationId))].map((id) => ({ reference: `Observation/${id}` }));
}

const bandCoding = (band: News2Band): Coding => ({ system: NEWS2_RISK_SYSTEM, code: band, display: BAND_DISPLAY[band] });

const notes = (result: News2Result) => (result.assumptions.length ? { note: result.assumptions.map((a) => ({ text: a.text })) } : {});

/** The NEWS2 total score as an Observation, one component per sub-score, derived from its inputs. */
export function news2Observation(result: News2Result, subject: Reference<Patient>): Observation {
  const { score } = result;
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey', display: 'Survey' }] },
    ],
    code: { coding: [NEWS2_TOTAL], text: 'NEWS2 total score' },
    subject,
    effectiveDateTime: new Date(result.at).toISOString(),
    valueInteger: score.total,
    interpretation: [{ coding: [bandCoding(score.band)], text: BAND_DISPLAY[score.band] }],
    component: NEWS2_PARAMETERS.map((p) => ({
      code: { coding: [p === 'spo2' ? NEWS2_SUBSCORE.spo2[score.scale] : NEWS2_SUBSCORE[p]] },
      valueInteger: score.subscores[p],
    })),
    derivedFrom: evidence(result),
    ...notes(result),
  };
}

/** The same assessment as a RiskAssessment: band as the qualitative risk, RCP response as mitigation. */
export function news2RiskAssessment(result: News2Result, subject: Reference<Patient>): RiskAssessment {
  const { band, total } = result.score;
  return {
    resourceType: 'RiskAssessment',
    status: 'final',
    subject,
    occurrenceDateTime: new Date(result.at).toISOString(),
    // RiskAssessment.method has no bound value set; the NEWS2 total-score concept names the method.
    method: { coding: [NEWS2_TOTAL], text: 'NEWS2' },
    basis: evidence(result),
    prediction: [
      {
        qualitativeRisk: { coding: [bandCoding(band), RISK_PROBABILITY[band]], text: BAND_DISPLAY[band] },
        rationale: `NEWS2 total ${total}`,
      },
    ],
    mitigation: clinicalResponseText(result.score),
    ...notes(result),
  };
}
