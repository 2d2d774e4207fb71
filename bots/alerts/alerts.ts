import type { Communication, Flag } from '@medplum/fhirtypes';
import { numberParameter, type BotEvent, type FhirClient } from '../runtime/manifest.ts';
import { PRIORITY_RANK, type Priority } from './codes.ts';
import { alertCommunication, careTeamRecipients, NOTICE_KEY, RULE_KEY } from './communication.ts';
import { ALERT_KEY, alertKey, endFlag, EVIDENCE_REFRESH_MS, flagPriority, isSnoozed, lastBreach, newFlag, withEvidence, type AlertSpec } from './flag.ts';

export type AlertAction = 'raised' | 'escalated' | 'updated' | 'unchanged';

export interface AlertOutcome {
  flag: Flag;
  action: AlertAction;
  /** Why no Communication was sent, when none was. */
  notice: 'sent' | 'suppressed' | 'snoozed' | 'no-care-team';
}

type AlertEvent = Pick<BotEvent, 'agent' | 'parameters'>;

/**
 * Raises the patient's alert for `spec.rule` or adds the new evidence to the active one, then makes
 * sure the care team has been told at the Flag's priority, unless a clinician snoozed the Flag and
 * it did not escalate. Safe to repeat: the Flag is found by its key, and the Communication by Flag
 * and priority.
 */
export async function raiseAlert(fhir: FhirClient, event: AlertEvent, spec: AlertSpec): Promise<AlertOutcome> {
  const { flag, action } = await onConflictRetry(async () => {
    const { flag: current, created } = await activeFlag(fhir, event, spec);
    if (created) return { flag: current, action: 'raised' as AlertAction };
    const next = withEvidence(current, spec);
    if (next === current) return { flag: current, action: 'unchanged' as AlertAction };
    const updated = await fhir.update(next, { ifMatch: current.meta?.versionId });
    return { flag: updated, action: (flagPriority(updated) !== flagPriority(current) ? 'escalated' : 'updated') as AlertAction };
  });
  if (action !== 'escalated' && isSnoozed(flag)) return { flag, action, notice: 'snoozed' };
  return { flag, action, notice: await notify(fhir, event, flag, spec) };
}

/**
 * The rules' conditions are not met at `at`: a Flag ends at once when `clearAfterMinutes` is 0, and
 * otherwise once `at` is that long after the last breach it recorded plus the refresh interval, as
 * breaches that close after the recorded one refreshed nothing. Clear readings write nothing before
 * that. One search finds the Flags of all the rules.
 */
export async function clearAlerts(fhir: FhirClient, event: AlertEvent, patientId: string, rules: readonly string[], at: string): Promise<Flag[]> {
  if (rules.length === 0) return [];
  const clearAfterMs = numberParameter(event.parameters, 'clearAfterMinutes') * 60_000;
  return onConflictRetry(async () => {
    const changed: Flag[] = [];
    for (const flag of (await flagsByKey(fhir, patientId, rules)).filter((f) => f.status === 'active')) {
      if (clearAfterMs === 0 || Date.parse(at) - lastBreach(flag) >= clearAfterMs + EVIDENCE_REFRESH_MS) changed.push(await fhir.update(endFlag(flag, 'inactive', at), { ifMatch: flag.meta?.versionId }));
    }
    return changed;
  });
}

/**
 * Of the given rules and priorities, those whose active Flag stands at that priority or higher with a
 * breach recorded less than the refresh interval before `at`: another breach would leave such a Flag
 * as it is (`withEvidence`), so a bot may spare the reads that would confirm one. One search.
 */
export async function standingAlerts(fhir: FhirClient, patientId: string, candidates: readonly { rule: string; priority: Priority }[], at: number): Promise<Set<string>> {
  const flags = await activeFlags(fhir, patientId, candidates.map((c) => c.rule));
  return new Set(candidates.filter(({ rule, priority }) => {
    const flag = flags.get(rule);
    return flag !== undefined && PRIORITY_RANK[flagPriority(flag)] >= PRIORITY_RANK[priority] && at < lastBreach(flag) + EVIDENCE_REFRESH_MS;
  }).map((c) => c.rule));
}

/** The patient's active Flag of each of the rules that has one. One search. */
export async function activeFlags(fhir: FhirClient, patientId: string, rules: readonly string[]): Promise<Map<string, Flag>> {
  const byRule = new Map<string, Flag>();
  if (rules.length === 0) return byRule;
  const flags = (await flagsByKey(fhir, patientId, rules)).filter((f) => f.status === 'active');
  for (const rule of rules) {
    const flag = flags.find((f) => f.identifier?.some((i) => i.system === ALERT_KEY && i.value === alertKey(patientId, rule)));
    if (flag) byRule.set(rule, flag);
  }
  return byRule;
}

/**
 * An Observation was entered in error: every active Flag of this bot citing it is retracted, with
 * the Communications sent about it, since the alert rested on a reading that never was. Each bot
 * retracts only its own Flags, so bots reacting to the same error do not contend for one Flag.
 */
export async function retractAlerts(fhir: FhirClient, event: AlertEvent, patientId: string, observationId: string): Promise<Flag[]> {
  const cited = `Observation/${observationId}`;
  const flags = await fhir.search<Flag>('Flag', { patient: `Patient/${patientId}`, _count: '200' });
  const retracted: Flag[] = [];
  for (const flag of flags) {
    if (flag.status !== 'active' || flag.author?.reference !== event.agent.reference) continue;
    if (!flag.extension?.some((e) => e.valueReference?.reference === cited)) continue;
    retracted.push(await fhir.update(endFlag(flag, 'entered-in-error', new Date().toISOString()), { ifMatch: flag.meta?.versionId }));
    const keys = Object.keys(PRIORITY_RANK).map((p) => `${NOTICE_KEY}|${flag.id}/${p}`);
    for (const c of await fhir.search<Communication>('Communication', { identifier: keys.join(','), _count: '10' })) {
      if (c.status !== 'entered-in-error') await fhir.update({ ...c, status: 'entered-in-error' }, { ifMatch: c.meta?.versionId });
    }
  }
  return retracted;
}

const CONFLICT_ATTEMPTS = 8;

/**
 * Runs a read-modify-write of a patient's Flag again when another run changed the Flag first (412):
 * readings of one patient arrive in bursts (a monitor's panel, a device catching up), and their
 * runs contend for the same Flag. Each attempt reads afresh, so nothing is overwritten.
 */
async function onConflictRetry<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if ((err as { status?: number }).status !== 412 || n >= CONFLICT_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * n));
    }
  }
}

/** All Flags holding the rules' keys: normally none or one active per rule (Flag has no status search parameter). */
function flagsByKey(fhir: FhirClient, patientId: string, rules: readonly string[]): Promise<Flag[]> {
  return fhir.search<Flag>('Flag', { identifier: rules.map((rule) => `${ALERT_KEY}|${alertKey(patientId, rule)}`).join(','), _count: String(10 * rules.length) });
}

/**
 * The active Flag, or a new one. A Flag a clinician set inactive still holds the key: it is retired
 * first, so the new episode gets its own Flag. The conditional create serialises concurrent runs.
 */
async function activeFlag(fhir: FhirClient, event: AlertEvent, spec: AlertSpec): Promise<{ flag: Flag; created: boolean }> {
  const found = await flagsByKey(fhir, spec.patientId, [spec.rule]);
  const active = found.find((f) => f.status === 'active');
  if (active) return { flag: active, created: false };
  for (const stale of found) await fhir.update(endFlag(stale, stale.status, stale.period?.end ?? spec.at), { ifMatch: stale.meta?.versionId });
  const key = `${ALERT_KEY}|${alertKey(spec.patientId, spec.rule)}`;
  const { resource, created } = await fhir.createIfNoneExist(newFlag(spec, event.agent), `identifier=${encodeURIComponent(key)}`);
  // a clinician ended it between the search and the create: look again
  if (resource.status !== 'active') throw Object.assign(new Error(`Flag/${resource.id} changed while raising ${spec.rule}`), { status: 412 });
  return { flag: resource, created };
}

/**
 * Tells the care team at the Flag's priority unless it was told about this Flag at that priority or
 * higher (a standing alert: one keyed lookup, which concurrent runs share), or a Communication for
 * this patient and rule at that priority or higher went out within the suppression window (a
 * recurring alert, a redelivery).
 */
async function notify(fhir: FhirClient, event: AlertEvent, flag: Flag, spec: AlertSpec): Promise<AlertOutcome['notice']> {
  const priority: Priority = flagPriority(flag);
  const atLeast = (c: Communication): boolean => c.status !== 'entered-in-error' && PRIORITY_RANK[c.priority ?? 'routine'] >= PRIORITY_RANK[priority];
  const keys = (Object.keys(PRIORITY_RANK) as Priority[]).filter((p) => PRIORITY_RANK[p] >= PRIORITY_RANK[priority]).map((p) => `${NOTICE_KEY}|${flag.id}/${p}`);
  if ((await fhir.search<Communication>('Communication', { identifier: keys.join(','), _count: String(keys.length) })).some(atLeast)) return 'suppressed';
  const windowMinutes = numberParameter(event.parameters, PRIORITY_RANK[priority] >= PRIORITY_RANK.urgent ? 'suppressUrgentMinutes' : 'suppressAdviceMinutes');
  const since = new Date(Date.now() - windowMinutes * 60_000).toISOString();
  const recent = await fhir.search<Communication>('Communication', { identifier: `${RULE_KEY}|${alertKey(spec.patientId, spec.rule)}`, sent: `ge${since}`, _count: '50' });
  if (recent.some(atLeast)) return 'suppressed';
  const recipients = await careTeamRecipients(fhir, spec.patientId);
  if (recipients.length === 0) return 'no-care-team';
  const notice = alertCommunication(flag, spec, priority, recipients, event.agent);
  await fhir.createIfNoneExist(notice, `identifier=${encodeURIComponent(`${NOTICE_KEY}|${flag.id}/${priority}`)}`);
  return 'sent';
}
