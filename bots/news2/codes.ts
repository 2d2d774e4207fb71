import type { Coding } from '@medplum/fhirtypes';
import { SNOMED } from '../vitals/codes.ts';
import type { News2Band, News2Parameter } from './score.ts';

/**
 * SNOMED CT UK edition concepts for NEWS2 (observable entities). Each was checked against several
 * published FHIR guides that agree (INTEROPen CareConnect, NHS Digital Medicines, HL7 Norway) and
 * its Verhoeff check digit verified.
 */
export const NEWS2_TOTAL: Coding = {
  system: SNOMED,
  code: '1104051000000101',
  display: 'Royal College of Physicians NEWS2 (National Early Warning Score 2) total score',
};

const subscore = (code: string, what: string): Coding => ({
  system: SNOMED,
  code,
  display: `Royal College of Physicians NEWS2 (National Early Warning Score 2) - ${what} score`,
});

export const NEWS2_SUBSCORE: Record<Exclude<News2Parameter, 'spo2'>, Coding> & { spo2: Record<1 | 2, Coding> } = {
  respiratoryRate: subscore('1104301000000104', 'respiration rate'),
  spo2: {
    1: subscore('1104311000000102', 'oxygen saturation scale 1'),
    2: subscore('1104321000000108', 'oxygen saturation scale 2'),
  },
  airOrOxygen: subscore('1104331000000105', 'air or oxygen'),
  systolic: subscore('1104341000000101', 'systolic blood pressure'),
  pulse: subscore('1104351000000103', 'pulse'),
  consciousness: subscore('1104361000000100', 'consciousness'),
  temperature: subscore('1104371000000107', 'temperature'),
};

/**
 * The RCP clinical-risk bands have no standard code, so Vigil defines them; fhir-profiles/ is to
 * publish this CodeSystem.
 */
export const NEWS2_RISK_SYSTEM = 'https://vigil.health/fhir/CodeSystem/news2-risk';

export const BAND_DISPLAY: Record<News2Band, string> = {
  low: 'Low clinical risk',
  'low-medium': 'Low–medium clinical risk',
  medium: 'Medium clinical risk',
  high: 'High clinical risk',
};

const riskProbability = (code: string, display: string): Coding => ({
  system: 'http://terminology.hl7.org/CodeSystem/risk-probability',
  code,
  display,
});

/** The nearest code of HL7's example value set for RiskAssessment.prediction.qualitativeRisk. */
export const RISK_PROBABILITY: Record<News2Band, Coding> = {
  low: riskProbability('low', 'Low likelihood'),
  'low-medium': riskProbability('moderate', 'Moderate likelihood'),
  medium: riskProbability('moderate', 'Moderate likelihood'),
  high: riskProbability('high', 'High likelihood'),
};
