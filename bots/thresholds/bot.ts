import type { Observation, Resource } from '@medplum/fhirtypes';
import { activeFlags, clearAlerts, raiseAlert, retractAlerts, standingAlerts } from '../alerts/alerts.ts';
import { ALERT_DEFAULTS, PRIORITY_RANK, SEVERITY_PRIORITY, THRESHOLD_ALERT, type AlertCode } from '../alerts/codes.ts';
import { EVIDENCE_REFRESH_MS } from '../alerts/flag.ts';
import { hasNewerReading, readingsBetween } from '../alerts/patient.ts';
import { goalRanges } from '../vitals/goals.ts';
import { patientOf } from '../runtime/host.ts';
import type { Bot, BotResult, FhirClient, RunSettings } from '../runtime/manifest.ts';
import { codesOf, LOINC } from '../vitals/codes.ts';
import { normaliseObservation } from '../vitals/normalise.ts';
import { isMonitored } from '../vitals/recency.ts';
import type { Reading } from '../vitals/reading.ts';
import { evaluateThresholds, lookbackMs, metLimits, needsHistory, persistentLimits, type ThresholdOptions } from './evaluate.ts';
import { isThresholdReading, THRESHOLD_MEASURES, type Breach, type PersonalRange, type ThresholdMeasure, type ThresholdReading } from './rules.ts';
import { THRESHOLD_DEFAULTS, thresholdSettings } from './settings.ts';

/** The readings the patient's rules on this reading look back at: every one of its measure in their persistence windows or weight-gain period. */
async function historyOf(fhir: FhirClient, patientId: string, reading: ThresholdReading, ranges: PersonalRange[], options: ThresholdOptions): Promise<Reading[]> {
  return readingsBetween(fhir, patientId, codesOf(reading.measure), reading.time - lookbackMs(reading, ranges, options), reading.time);
}

/**
 * The alerts a reading past limits with persistence would only confirm, when its Flags all stand
 * (see `standingAlerts`): then its history need not be read. A device streaming past an advice
 * limit would otherwise read half an hour of its readings on every sample. Weights are always read.
 */
async function standingFor(fhir: FhirClient, patientId: string, reading: ThresholdReading, ranges: PersonalRange[], options: ThresholdOptions): Promise<AlertCode[] | undefined> {
  if (reading.measure === 'weight') return undefined;
  const candidates = persistentLimits(reading, ranges, options).map((l) => ({ rule: THRESHOLD_ALERT[`${l.measure}-${l.side}`], priority: SEVERITY_PRIORITY[l.severity] }));
  const standing = await standingAlerts(fhir, patientId, candidates, reading.time);
  return candidates.every((c) => standing.has(c.rule)) ? candidates.map((c) => c.rule) : undefined;
}

/** The readings of an Observation this bot judges. */
const judged = (readings: readonly Reading[]): ThresholdReading[] => readings.filter(isThresholdReading);

/** The alerts a reading of the measure decides: its low and high limits, and weight gain. */
const alertsOf = (measure: ThresholdMeasure): AlertCode[] => [
  THRESHOLD_ALERT[`${measure}-low`],
  THRESHOLD_ALERT[`${measure}-high`],
  ...(measure === 'weight' ? [THRESHOLD_ALERT['weight-gain']] : []),
];

/**
 * Whether a run on the Observation could decide anything. A reading within every limit of the
 * patient's (the defaults, or their Goals' ranges) can only clear a standing alert of its measure:
 * without one, it makes no run, so a stream of normal readings leaves no AuditEvent per sample.
 * Weights (gain is judged on their history), error corrections and unusable readings always run.
 */
async function decides(resource: Resource, fhir: FhirClient, { goals, parameters }: RunSettings): Promise<boolean> {
  if (!isMonitored(resource)) return false;
  const patientId = patientOf(resource);
  const normalised = normaliseObservation(resource as Observation);
  if (!patientId || normalised.kind !== 'readings') return true;
  const readings = judged(normalised.readings);
  const ranges = goalRanges(goals);
  const { options } = thresholdSettings(parameters);
  if (readings.length === 0 || readings.some((r) => r.measure === 'weight' || metLimits(r, ranges, options).length > 0)) return true;
  return (await activeFlags(fhir, patientId, readings.flatMap((r) => alertsOf(r.measure)))).size > 0;
}

export const thresholdsBot: Bot = {
  name: 'thresholds',
  title: 'Vigil thresholds',
  trigger: { resourceType: 'Observation', criteria: `Observation?code=${THRESHOLD_MEASURES.flatMap(codesOf).filter((c, i, all) => all.indexOf(c) === i).map((c) => `${LOINC}|${c}`).join(',')}`, accepts: decides },
  // readings ($lastn), alerts (Flag, Communication to the CareTeam); retractions update the Communications
  scopes: ['system/Observation.s', 'system/Flag.cus', 'system/Communication.cus', 'system/CareTeam.s'],
  timeoutMs: 10_000,
  defaults: { ...ALERT_DEFAULTS, ...THRESHOLD_DEFAULTS },

  async handler(event, fhir): Promise<BotResult> {
    const observation = event.resource as Observation;
    const patientId = patientOf(observation);
    if (!patientId) return { outcome: 'skipped', message: 'the Observation is not about a Patient' };
    const normalised = normaliseObservation(observation);
    if (normalised.kind === 'ignored') return { outcome: 'skipped', message: 'not a monitored measure' };
    if (normalised.kind === 'rejected') {
      if (observation.status !== 'entered-in-error') return { outcome: 'rejected', message: normalised.reason };
      const flags = await retractAlerts(fhir, event, patientId, observation.id as string);
      return { outcome: 'success', message: `entered in error: retracted ${flags.length} alert(s)` };
    }

    const ranges = goalRanges(event.goals);
    const { options, ignored } = thresholdSettings(event.parameters);
    const readings = judged(normalised.readings);
    const breached = new Map<AlertCode, Breach>();
    const evaluated = new Set<AlertCode>();
    // alerts whose persistence this run leaves unconfirmed: their Flag stands, neither raised nor cleared
    const standing = new Set<AlertCode>();
    for (const reading of readings) {
      let history: Reading[] = [];
      if (needsHistory(reading, ranges, options)) {
        const held = await standingFor(fhir, patientId, reading, ranges, options);
        if (held) held.forEach((code) => standing.add(code));
        else history = await historyOf(fhir, patientId, reading, ranges, options);
      }
      for (const code of alertsOf(reading.measure)) evaluated.add(code);
      for (const breach of evaluateThresholds(reading, history, ranges, options)) {
        const code = THRESHOLD_ALERT[breach.rule];
        const other = breached.get(code);
        // systolic and diastolic both raise bp-high: the more severe breach speaks, both texts are kept
        if (!other) breached.set(code, breach);
        else breached.set(code, merge(other, breach));
      }
    }

    const at = new Date(Math.max(...readings.map((r) => r.time))).toISOString();
    const actions: string[] = [];
    // A late reading is judged as of its time, but the current state is the newer reading's to alert on.
    const late = breached.size > 0 && (await hasNewerReading(fhir, patientId, observation, readings));
    for (const [code, breach] of breached) {
      if (late) {
        actions.push(`${code} ${breach.severity}: no alert, a newer reading of the same measure came first`);
        continue;
      }
      const alert = await raiseAlert(fhir, event, {
        patientId,
        rule: code,
        code,
        priority: SEVERITY_PRIORITY[breach.severity],
        evidence: [...new Set(breach.evidence)].map((id) => ({ reference: `Observation/${id}` })),
        text: breach.text,
        at,
      });
      actions.push(`${code} ${breach.severity}: alert ${alert.action}, care team ${alert.notice}`);
    }
    for (const code of standing) if (!breached.has(code)) actions.push(`${code}: alert stands (breach recorded within ${EVIDENCE_REFRESH_MS / 60_000} min)`);
    await clearAlerts(fhir, event, patientId, [...evaluated].filter((code) => !breached.has(code) && !standing.has(code)), at);
    return { outcome: 'success', message: [actions.length ? actions.join('; ') : 'within limits', ...ignored].join('; ') };
  },
};

function merge(a: Breach, b: Breach): Breach {
  const [first, second] = PRIORITY_RANK[SEVERITY_PRIORITY[b.severity]] > PRIORITY_RANK[SEVERITY_PRIORITY[a.severity]] ? [b, a] : [a, b];
  return { ...first, evidence: [...first.evidence, ...second.evidence], text: `${first.text}; ${second.text}` };
}
