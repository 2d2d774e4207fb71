import type { News2Result } from './assess.ts';
import { NEWS2_PARAMETERS, type News2Parameter, type News2Score } from './score.ts';

/**
 * The clinical response the RCP ties to each trigger (NEWS2, 2017, charts 3 and 4), in Vigil's
 * words. A total of 0 and of 1–4 share the low band but not the monitoring frequency.
 */
export interface ClinicalResponse {
  response: string;
  monitoring: string;
  action: string;
}

export function clinicalResponse(score: Pick<News2Score, 'total' | 'band'>): ClinicalResponse {
  switch (score.band) {
    case 'high':
      return {
        response: 'Emergency response',
        monitoring: 'continuous monitoring of vital signs',
        action:
          'The registered nurse informs the medical team at once (specialist registrar level or above); emergency assessment by a team with critical-care competencies, including advanced airway skills; consider transfer to level 2 or 3 care.',
      };
    case 'medium':
      return {
        response: 'Key threshold for urgent response',
        monitoring: 'at least hourly',
        action:
          'The registered nurse informs the medical team at once and requests urgent assessment by a clinician or team competent in the care of acutely ill patients; care where the patient can be monitored.',
      };
    case 'low-medium':
      return {
        response: 'Urgent ward-based response',
        monitoring: 'at least hourly',
        action: 'The registered nurse informs the medical team caring for the patient, who review and decide whether to escalate care.',
      };
    case 'low':
      return score.total === 0
        ? { response: 'Ward-based response', monitoring: 'at least 12-hourly', action: 'Continue routine NEWS2 monitoring.' }
        : {
            response: 'Ward-based response',
            monitoring: 'at least every 4–6 hours',
            action: 'A registered nurse assesses the patient and decides whether to monitor more often or escalate care.',
          };
  }
}

/** The response as one sentence, for RiskAssessment.mitigation and the alert. */
export function clinicalResponseText(score: Pick<News2Score, 'total' | 'band'>): string {
  const { response, monitoring, action } = clinicalResponse(score);
  return `${response}; monitoring ${monitoring}. ${action}`;
}

const PARAMETER_LABEL: Record<News2Parameter, string> = {
  respiratoryRate: 'respiration rate',
  spo2: 'SpO2',
  airOrOxygen: 'air or oxygen',
  systolic: 'systolic BP',
  pulse: 'pulse',
  consciousness: 'consciousness',
  temperature: 'temperature',
};

/** The text of the alert Communication: score, band, sub-scores, assumptions, then what to do. */
export function news2AlertText(result: News2Result): string {
  const { score } = result;
  const parts = NEWS2_PARAMETERS.map((p) => `${PARAMETER_LABEL[p]} ${score.subscores[p]}`);
  return [
    `NEWS2 ${score.total} (${score.band} risk, SpO2 scale ${score.scale}): ${parts.join(', ')}.`,
    ...result.assumptions.map((a) => a.text),
    clinicalResponseText(score),
  ].join('\n');
}
