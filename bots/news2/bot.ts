import { createHash } from 'node:crypto';
import type { Observation, Patient, Reference, RiskAssessment } from '@medplum/fhirtypes';
import { clearAlerts, raiseAlert, retractAlerts } from '../alerts/alerts.ts';
import { ALERT_DEFAULTS, type Priority } from '../alerts/codes.ts';
import { hasNewerReading, latestObservations, readingsOf } from '../alerts/patient.ts';
import { patientOf } from '../runtime/host.ts';
import { numberParameter, type Bot, type BotResult, type FhirClient } from '../runtime/manifest.ts';
import { LOINC } from '../vitals/codes.ts';
import { goalRanges, isScale2 } from '../vitals/goals.ts';
import { normaliseObservation } from '../vitals/normalise.ts';
import { isMonitored } from '../vitals/recency.ts';
import { assessNews2, DEFAULT_WINDOW_MINUTES, MEASUREMENT_READINGS, type News2Result } from './assess.ts';
import { NEWS2_TOTAL } from './codes.ts';
import { news2Observation, news2RiskAssessment } from './resources.ts';
import { news2AlertText } from './response.ts';
import type { News2Band } from './score.ts';

/** The NEWS2 inputs: RR, SpO2 (two codes), systolic (alone or in the BP panel), pulse, temperature, ACVPU, O2 flow. */
export const NEWS2_INPUT_CODES = ['9279-1', '2708-6', '59408-5', '8480-6', '85354-9', '8867-4', '8310-5', '67775-7', '3151-8'] as const;
/** Identifies an assessment by its inputs, so the same inputs never give a second score. */
export const NEWS2_KEY = 'urn:vigil:news2';

/** What a run reads of the window: the inputs, and the scores to tell whether the assessment changed. */
const WINDOW_CODES = [...NEWS2_INPUT_CODES.map((c) => `${LOINC}|${c}`), `${NEWS2_TOTAL.system}|${NEWS2_TOTAL.code}`];

/**
 * Within its band, a changed assessment is stored at most this often (reading time): a wearable's
 * noise flips a sub-score (SpO2 95/96 %, pulse 90/91) every few readings, and each stored score is
 * an Observation and a RiskAssessment. A new band is stored, and alerted on, at once.
 */
const SCORE_REFRESH_MS = 5 * 60_000;

const BAND_PRIORITY: Record<Exclude<News2Band, 'low'>, Priority> = { 'low-medium': 'urgent', medium: 'asap', high: 'stat' };

export const news2Bot: Bot = {
  name: 'news2',
  title: 'Vigil NEWS2',
  trigger: { resourceType: 'Observation', criteria: `Observation?code=${NEWS2_INPUT_CODES.map((c) => `${LOINC}|${c}`).join(',')}`, accepts: async (resource) => isMonitored(resource) },
  // its window and scores (Observation), its RiskAssessments, alerts (Flag, Communication to the CareTeam); retractions update them
  scopes: ['system/Observation.cus', 'system/RiskAssessment.cus', 'system/Flag.cus', 'system/Communication.cus', 'system/CareTeam.s'],
  timeoutMs: 10_000,
  defaults: { windowMinutes: DEFAULT_WINDOW_MINUTES, ...ALERT_DEFAULTS },
  // NEWS2 scores the patient's latest vitals: a newer usable reading's run scores them as well
  coalesce(resource) {
    const patientId = patientOf(resource);
    const normalised = normaliseObservation(resource as Observation);
    return patientId && normalised.kind === 'readings' ? { key: patientId, at: Math.max(...normalised.readings.map((r) => r.time)) } : undefined;
  },

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
    const window = await windowOf(fhir, patientId, at - windowMinutes * 60_000, at);
    const scale2 = isScale2(goalRanges(event.goals));
    const result = assessNews2([...readingsOf(window), ...normalised.readings], { at, windowMinutes, scale2 });
    if (!result.scored) return { outcome: 'skipped', message: `not scored: no ${result.missing.join(', ')} in the last ${windowMinutes} min` };

    const { score } = result;
    const latest = window.find(isScore);
    const fresh = news2Observation(result, { reference: `Patient/${patientId}` });
    // A reading that leaves the assessment as it was adds no score: a wearable would otherwise add two a second.
    const unchanged = latest !== undefined && sameAssessment(latest, fresh);
    const stands = unchanged || (latest !== undefined && sameBand(latest, fresh) && at - Date.parse(latest.effectiveDateTime ?? '') < SCORE_REFRESH_MS);
    const kept = unchanged ? ', unchanged' : stands ? `, stored score ${latest?.valueInteger} stands (same band)` : '';
    const when = new Date(at).toISOString();
    if (score.band === 'low') {
      if (!stands) await writeScore(fhir, patientId, result, fresh);
      await clearAlerts(fhir, event, patientId, ['news2'], when);
      return { outcome: 'success', message: `NEWS2 ${score.total} (low)${kept}` };
    }
    // The alert cites the score in force and the readings it rests on.
    const reused = stands ? await storedScore(fhir, latest as Observation) : undefined;
    const { observation: news2, assessment } = reused ?? (await writeScore(fhir, patientId, result, fresh));
    // A late reading is scored as of its time, but the current state is the newer reading's to alert on.
    if (await hasNewerReading(fhir, patientId, observation, normalised.readings)) return { outcome: 'success', message: `NEWS2 ${score.total} (${score.band})${kept}: no alert, a newer reading of the same measure came first` };
    const inputs = news2.derivedFrom ?? [];
    const alert = await raiseAlert(fhir, event, {
      patientId,
      rule: 'news2',
      code: `news2-${score.band}`,
      priority: BAND_PRIORITY[score.band],
      evidence: [ref(assessment), ref(news2), ...inputs],
      text: news2AlertText(result),
      at: when,
    });
    return { outcome: 'success', message: `NEWS2 ${score.total} (${score.band})${kept}: alert ${alert.action}, care team ${alert.notice}` };
  },
};

/**
 * The newest Observations of each input (enough for a measurement: unusable ones, such as a unit
 * that cannot be read, are left out of it) and the newest scores in the window.
 */
function windowOf(fhir: FhirClient, patientId: string, from: number, to: number): Promise<Observation[]> {
  return latestObservations(fhir, patientId, WINDOW_CODES, from, to, MEASUREMENT_READINGS);
}

const isScore = (o: Observation): boolean => o.code?.coding?.some((c) => c.system === NEWS2_TOTAL.system && c.code === NEWS2_TOTAL.code) ?? false;

/** Whether two NEWS2 Observations state the same assessment (total, band, sub-scores and scale, assumptions), whatever their inputs and time. */
function sameAssessment(a: Observation, b: Observation): boolean {
  const gist = (o: Observation): string => JSON.stringify([o.valueInteger, o.interpretation, o.component, o.note ?? []]);
  return gist(a) === gist(b);
}

const sameBand = (a: Observation, b: Observation): boolean => JSON.stringify(a.interpretation) === JSON.stringify(b.interpretation);

/** The NEWS2 Observation and RiskAssessment, each created once per set of input values. */
async function writeScore(fhir: FhirClient, patientId: string, result: News2Result, observation: Observation): Promise<{ observation: Observation; assessment: RiskAssessment }> {
  const inputs = result.used.map((r) => `${r.observationId}:${r.measure}=${r.value}@${r.time}`).sort();
  const value = `${patientId}/${createHash('sha256').update(`${result.score.scale}|${inputs.join('|')}`).digest('hex').slice(0, 32)}`;
  const identifier = [{ system: NEWS2_KEY, value }];
  const criteria = `identifier=${encodeURIComponent(`${NEWS2_KEY}|${value}`)}`;
  const stored = await fhir.createIfNoneExist({ ...observation, identifier }, criteria);
  const assessment = await fhir.createIfNoneExist({ ...news2RiskAssessment(result, observation.subject as Reference<Patient>), identifier }, criteria);
  return { observation: stored.resource, assessment: assessment.resource };
}

/** A stored score with its RiskAssessment, which shares its identifier; none if a failed run left that unwritten. */
async function storedScore(fhir: FhirClient, observation: Observation): Promise<{ observation: Observation; assessment: RiskAssessment } | undefined> {
  const key = observation.identifier?.find((i) => i.system === NEWS2_KEY)?.value;
  const [assessment] = key ? await fhir.search<RiskAssessment>('RiskAssessment', { identifier: `${NEWS2_KEY}|${key}`, _count: '1' }) : [];
  return assessment && { observation, assessment };
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
