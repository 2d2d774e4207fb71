import { createHash } from 'node:crypto';
import type { Observation, Reference, RiskAssessment } from '@medplum/fhirtypes';
import { clearAlerts, raiseAlert, retractAlerts } from '../alerts/alerts.ts';
import { ALERT_DEFAULTS, type Priority } from '../alerts/codes.ts';
import { personalRanges, readingsBetween } from '../alerts/patient.ts';
import { patientOf } from '../runtime/host.ts';
import { numberParameter, type Bot, type BotResult, type FhirClient } from '../runtime/manifest.ts';
import { LOINC } from '../vitals/codes.ts';
import { isScale2 } from '../vitals/goals.ts';
import { normaliseObservation } from '../vitals/normalise.ts';
import { isMonitored } from '../vitals/recency.ts';
import { assessNews2, DEFAULT_WINDOW_MINUTES, type News2Result } from './assess.ts';
import { NEWS2_TOTAL } from './codes.ts';
import { news2Observation, news2RiskAssessment } from './resources.ts';
import { news2AlertText } from './response.ts';
import type { News2Band } from './score.ts';

/** The NEWS2 inputs: RR, SpO2 (two codes), systolic (alone or in the BP panel), pulse, temperature, ACVPU, O2 flow. */
export const NEWS2_INPUT_CODES = ['9279-1', '2708-6', '59408-5', '8480-6', '85354-9', '8867-4', '8310-5', '67775-7', '3151-8'] as const;
/** Identifies an assessment by its inputs, so the same inputs never give a second score. */
export const NEWS2_KEY = 'urn:vigil:news2';

const BAND_PRIORITY: Record<Exclude<News2Band, 'low'>, Priority> = { 'low-medium': 'urgent', medium: 'asap', high: 'stat' };

export const news2Bot: Bot = {
  name: 'news2',
  title: 'Vigil NEWS2',
  trigger: { resourceType: 'Observation', criteria: `Observation?code=${NEWS2_INPUT_CODES.map((c) => `${LOINC}|${c}`).join(',')}`, accepts: async (resource) => isMonitored(resource) },
  timeoutMs: 10_000,
  defaults: { windowMinutes: DEFAULT_WINDOW_MINUTES, ...ALERT_DEFAULTS },

  async handler(event, fhir): Promise<BotResult> {
    const observation = event.resource as Observation;
    const patientId = patientOf(observation);
    if (!patientId) return { outcome: 'skipped', message: 'the Observation is not about a Patient' };
    const normalised = normaliseObservation(observation);
    if (normalised.kind === 'ignored') return { outcome: 'skipped', message: 'not a NEWS2 input' };
    if (normalised.kind === 'rejected') {
      if (observation.status !== 'entered-in-error') return { outcome: 'rejected', message: normalised.reason };
      const scores = await retractScores(fhir, observation.id as string);
      const flags = await retractAlerts(fhir, event, patientId, observation.id as string);
      return { outcome: 'success', message: `entered in error: retracted ${scores} NEWS2 score(s) and ${flags.length} alert(s)` };
    }

    const at = Math.max(...normalised.readings.map((r) => r.time));
    const windowMinutes = numberParameter(event.parameters, 'windowMinutes');
    const stored = await readingsBetween(fhir, patientId, NEWS2_INPUT_CODES, at - windowMinutes * 60_000, at);
    const scale2 = isScale2(await personalRanges(fhir, patientId));
    const result = assessNews2([...stored, ...normalised.readings], { at, windowMinutes, scale2 });
    if (!result.scored) return { outcome: 'skipped', message: `not scored: no ${result.missing.join(', ')} in the last ${windowMinutes} min` };

    const { score } = result;
    const { observation: news2, assessment } = await writeScore(fhir, patientId, result);
    const when = new Date(at).toISOString();
    if (score.band === 'low') {
      await clearAlerts(fhir, event, patientId, ['news2'], when);
      return { outcome: 'success', message: `NEWS2 ${score.total} (low)` };
    }
    const inputs = [...new Set(result.used.map((r) => r.observationId))].map((id) => ({ reference: `Observation/${id}` }));
    const alert = await raiseAlert(fhir, event, {
      patientId,
      rule: 'news2',
      code: `news2-${score.band}`,
      priority: BAND_PRIORITY[score.band],
      evidence: [ref(assessment), ref(news2), ...inputs],
      text: news2AlertText(result),
      at: when,
    });
    return { outcome: 'success', message: `NEWS2 ${score.total} (${score.band}): alert ${alert.action}, care team ${alert.notice}` };
  },
};

/** The NEWS2 Observation and RiskAssessment, each created once per set of input values. */
async function writeScore(fhir: FhirClient, patientId: string, result: News2Result): Promise<{ observation: Observation; assessment: RiskAssessment }> {
  const subject = { reference: `Patient/${patientId}` };
  const inputs = result.used.map((r) => `${r.observationId}:${r.measure}=${r.value}@${r.time}`).sort();
  const value = `${patientId}/${createHash('sha256').update(`${result.score.scale}|${inputs.join('|')}`).digest('hex').slice(0, 32)}`;
  const identifier = [{ system: NEWS2_KEY, value }];
  const criteria = `identifier=${encodeURIComponent(`${NEWS2_KEY}|${value}`)}`;
  const observation = await fhir.createIfNoneExist({ ...news2Observation(result, subject), identifier }, criteria);
  const assessment = await fhir.createIfNoneExist({ ...news2RiskAssessment(result, subject), identifier }, criteria);
  return { observation: observation.resource, assessment: assessment.resource };
}

/** NEWS2 scores derived from a reading entered in error are entered in error too, with their RiskAssessments. */
async function retractScores(fhir: FhirClient, observationId: string): Promise<number> {
  const scores = await fhir.search<Observation>('Observation', {
    'derived-from': `Observation/${observationId}`,
    code: `${NEWS2_TOTAL.system}|${NEWS2_TOTAL.code}`,
    _count: '100',
  });
  let retracted = 0;
  for (const score of scores.filter((s) => s.status !== 'entered-in-error')) {
    await fhir.update({ ...score, status: 'entered-in-error' }, { ifMatch: score.meta?.versionId });
    const key = score.identifier?.find((i) => i.system === NEWS2_KEY)?.value;
    const assessments = key ? await fhir.search<RiskAssessment>('RiskAssessment', { identifier: `${NEWS2_KEY}|${key}`, _count: '10' }) : [];
    for (const a of assessments.filter((x) => x.status !== 'entered-in-error')) {
      await fhir.update({ ...a, status: 'entered-in-error' }, { ifMatch: a.meta?.versionId });
    }
    retracted++;
  }
  return retracted;
}

const ref = (r: Observation | RiskAssessment): Reference => ({ reference: `${r.resourceType}/${r.id}` });
