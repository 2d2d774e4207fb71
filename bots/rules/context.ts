import type { CareTeam, Observation, Patient, PlanDefinition } from '@medplum/fhirtypes';
import type { FhirClient } from '../runtime/manifest.ts';
import { LOINC } from '../vitals/codes.ts';
import { effectiveTime, normaliseObservation } from '../vitals/normalise.ts';
import type { RuleContext } from './evaluate.ts';
import { claimsRuleProfile, ECA_RULE, readRule, type AlertRule } from './rule.ts';

/** Statuses of an Observation with a usable result: what %previous and %recent hold, and what may trigger a rule. */
export const USABLE = 'preliminary,final,amended,corrected';
const MAX_RECENT = '100';

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
 * What a rule sees of the patient when `trigger` arrives: the readings of its code (the LOINC
 * coding, else the first) up to its time, the previous one, and the Patient.
 */
export async function ruleContext(fhir: FhirClient, trigger: Observation, patientId: string, recentMinutes: number): Promise<RuleContext> {
  const coding = trigger.code?.coding?.find((c) => c.system === LOINC) ?? trigger.code?.coding?.[0];
  const time = effectiveTime(trigger);
  const patient = await fhir.read<Patient>('Patient', patientId).catch(() => undefined);
  if (!coding?.code || typeof time !== 'number') return { trigger, recent: [trigger], patient };
  const base = { subject: `Patient/${patientId}`, code: `${coding.system ?? ''}|${coding.code}`, status: USABLE, _sort: '-date' };
  const at = new Date(time).toISOString();
  const [window, before] = await Promise.all([
    fhir.search<Observation>('Observation', { ...base, date: [`ge${new Date(time - recentMinutes * 60_000).toISOString()}`, `le${at}`], _count: MAX_RECENT }),
    fhir.search<Observation>('Observation', { ...base, date: `lt${at}`, _count: '1' }),
  ]);
  // The trigger as the change named it, whatever the search found of it.
  const recent = [trigger, ...window.filter((o) => o.id !== trigger.id)];
  return { trigger, previous: before[0], recent, patient };
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
