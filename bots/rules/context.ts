import type { CareTeam, CodeableConcept, Observation, Patient, PlanDefinition, Quantity } from '@medplum/fhirtypes';
import type { FhirClient } from '../runtime/manifest.ts';
import { LOINC, MEASURE_BY_LOINC, UCUM } from '../vitals/codes.ts';
import { effectiveTime, normaliseObservation } from '../vitals/normalise.ts';
import { DISPLAY_UNIT, type QuantityReading } from '../vitals/reading.ts';
import type { RuleContext } from './evaluate.ts';
import { claimsRuleProfile, ECA_RULE, readRule, type AlertRule } from './rule.ts';

/** Statuses of an Observation with a usable result: what %previous and %recent hold, and what may trigger a rule. */
export const USABLE = 'preliminary,final,amended,corrected';
const MAX_RECENT = '100';
/**
 * Earlier readings searched for `%previous`, newest first: the first that vitals/ accepts is it. A
 * device stuck on an implausible value for longer leaves it empty, so a jump cannot be had from it.
 */
const MAX_PREVIOUS = '10';

/**
 * Why a reading cannot trigger a rule, if it cannot: no usable result, no time, or a vital sign
 * Vigil rejects (wrong unit, implausible). Other codes are the rules' own business.
 */
export function unusable(o: Observation): string | undefined {
  if (!USABLE.split(',').includes(o.status)) return `Observation status is ${o.status}`;
  const normalised = normaliseObservation(o);
  if (normalised.kind === 'rejected') return normalised.reason;
  const time = effectiveTime(o);
  return typeof time === 'string' ? time : undefined;
}

/** The active rules (PlanDefinitions claiming the rule profile). */
export async function activeRules(fhir: FhirClient): Promise<AlertRule[]> {
  const found = await fhir.search<PlanDefinition>('PlanDefinition', { type: ECA_RULE, status: 'active', _count: '1000' });
  return found.filter(claimsRuleProfile).map(readRule);
}

/**
 * An Observation as a rule sees it: a vital sign as the built-in bots judge it, each value in its
 * measure's canonical unit (a 98.6 °F temperature is 37 Cel), or nothing when vitals/ rejects it
 * (implausible, a unit that cannot be converted); any other Observation as stored.
 */
export function asJudged(o: Observation): Observation | undefined {
  const normalised = normaliseObservation(o);
  if (normalised.kind === 'ignored') return o;
  if (normalised.kind === 'rejected') return undefined;
  const inCanonical = (code: CodeableConcept | undefined, q: Quantity): Quantity => {
    const measure = code?.coding?.map((c) => (c.system === LOINC && c.code ? MEASURE_BY_LOINC.get(c.code) : undefined)).find(Boolean);
    const r = normalised.readings.find((x): x is QuantityReading => x.measure === measure && 'unit' in x);
    return r ? { value: r.value, unit: DISPLAY_UNIT[r.measure], system: UCUM, code: r.unit } : q;
  };
  return {
    ...o,
    ...(o.valueQuantity && { valueQuantity: inCanonical(o.code, o.valueQuantity) }),
    // a blood-pressure panel's values are its components
    ...(o.component && { component: o.component.map((c) => (c.valueQuantity ? { ...c, valueQuantity: inCanonical(c.code, c.valueQuantity) } : c)) }),
  };
}

const judged = (observations: readonly Observation[]): Observation[] => observations.flatMap((o) => asJudged(o) ?? []);

/**
 * What a rule sees of the patient when `trigger` arrives: the readings of its code (the LOINC
 * coding, else the first) up to its time, the previous one, and the Patient; all as judged
 * (`asJudged`), so readings vitals/ rejects are in neither `%previous` nor `%recent`.
 */
export async function ruleContext(fhir: FhirClient, trigger: Observation, patientId: string, recentMinutes: number): Promise<RuleContext> {
  const coding = trigger.code?.coding?.find((c) => c.system === LOINC) ?? trigger.code?.coding?.[0];
  const time = effectiveTime(trigger);
  // a patient gone leaves the rule without `%patient`; any other failure (a refusal) fails the run
  const patient = await fhir.read<Patient>('Patient', patientId).catch((err: { status?: number }) => {
    if (err.status === 404 || err.status === 410) return undefined;
    throw err;
  });
  // the caller refused a trigger vitals/ rejects (`unusable`)
  const seen = asJudged(trigger) ?? trigger;
  if (!coding?.code || typeof time !== 'number') return { trigger: seen, recent: [seen], patient };
  const base = { subject: `Patient/${patientId}`, code: `${coding.system ?? ''}|${coding.code}`, status: USABLE, _sort: '-date' };
  const at = new Date(time).toISOString();
  const [window, before] = await Promise.all([
    fhir.search<Observation>('Observation', { ...base, date: [`ge${new Date(time - recentMinutes * 60_000).toISOString()}`, `le${at}`], _count: MAX_RECENT }),
    fhir.search<Observation>('Observation', { ...base, date: `lt${at}`, _count: MAX_PREVIOUS }),
  ]);
  // The trigger as the change named it, whatever the search found of it.
  const recent = [seen, ...judged(window.filter((o) => o.id !== trigger.id))];
  return { trigger: seen, previous: judged(before)[0], recent, patient };
}

/**
 * Whether the rule applies to the patient: no scope; the patient; or a CareTeam that is the
 * patient's own active care team, or takes part in it (a clinic's team as a participant).
 */
export async function inScope(fhir: FhirClient, rule: AlertRule, patientId: string): Promise<boolean> {
  if (rule.scope.length === 0 || rule.scope.includes(`Patient/${patientId}`)) return true;
  const teams = rule.scope.filter((s) => s.startsWith('CareTeam/'));
  if (teams.length === 0) return false;
  const patient = `Patient/${patientId}`;
  const own = await fhir.search<CareTeam>('CareTeam', { _id: teams.map((t) => t.slice('CareTeam/'.length)).join(','), patient, status: 'active', _count: '1' });
  if (own.length > 0) return true;
  const joined = await fhir.search<CareTeam>('CareTeam', { participant: teams.join(','), patient, status: 'active', _count: '1' });
  return joined.length > 0;
}
