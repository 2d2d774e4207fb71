import type { Coding, Device, Extension, Flag, Reference } from '@medplum/fhirtypes';
import { ALERT_DISPLAY, ALERT_SYSTEM, PRIORITY_RANK, type AlertCode, type Priority } from './codes.ts';

export const FLAG_PROFILE = 'https://vigil.health/fhir/StructureDefinition/vigil-alert-flag';
/** The current episode of a patient's alert for one rule; `ENDED_KEY` once it is over. */
export const ALERT_KEY = 'urn:vigil:alert';
export const ENDED_KEY = 'urn:vigil:alert-ended';
export const FLAG_DETAIL = 'http://hl7.org/fhir/StructureDefinition/flag-detail';
export const PRIORITY_URL = 'https://vigil.health/fhir/StructureDefinition/alert-priority';
/** Reading time of the newest breach the Flag recorded: the time of its evidence. */
export const LAST_BREACH_URL = 'https://vigil.health/fhir/StructureDefinition/alert-last-breach';
/**
 * New evidence at the same priority refreshes a Flag at most this often (by reading time): a device
 * streaming every few seconds would otherwise rewrite it on every reading, a version each time for
 * the clinicians' history and every subscriber. An escalation is written at once.
 */
export const EVIDENCE_REFRESH_MS = 5 * 60_000;
/** Set by a clinician: until then new evidence updates the Flag but tells no one, unless it escalates. */
export const SNOOZE_URL = 'https://vigil.health/fhir/StructureDefinition/alert-snoozed-until';

/** One breach of a rule: what the Flag and Communication say. */
export interface AlertSpec {
  patientId: string;
  /** Flag key: one active Flag per patient and rule (`news2`, or the alert code). */
  rule: string;
  code: AlertCode;
  /** Flag.code.text when the alert code alone says too little (which measure, which custom rule). */
  label?: string;
  /** Codings beside the Vigil alert code: a custom rule's own code. */
  codings?: Coding[];
  /** Default clinical; a technical problem (a silent device) is administrative. */
  category?: 'clinical' | 'administrative';
  priority: Priority;
  /** Most telling first (a RiskAssessment before its inputs). */
  evidence: Reference[];
  text: string;
  /** Time of the evidence. */
  at: string;
}

export const alertKey = (patientId: string, rule: string): string => `${patientId}/${rule}`;

export function newFlag(spec: AlertSpec, author: Reference<Device>): Flag {
  return {
    resourceType: 'Flag',
    meta: { profile: [FLAG_PROFILE] },
    identifier: [{ system: ALERT_KEY, value: alertKey(spec.patientId, spec.rule) }],
    status: 'active',
    category: [{ coding: [CATEGORY[spec.category ?? 'clinical']] }],
    code: codeOf(spec),
    subject: { reference: `Patient/${spec.patientId}` },
    period: { start: spec.at },
    author,
    extension: extensions(spec.priority, spec.evidence, spec.at),
  };
}

/**
 * The Flag with new evidence: code and priority move only upwards, and an escalation also ends a
 * snooze (the clinician snoozed a milder alert). Evidence at the same priority is taken only once
 * `EVIDENCE_REFRESH_MS` has passed since the recorded breach, and never when older than it; the
 * Flag comes back as it was otherwise.
 */
export function withEvidence(flag: Flag, spec: AlertSpec): Flag {
  const escalates = PRIORITY_RANK[spec.priority] > PRIORITY_RANK[flagPriority(flag)];
  const at = Date.parse(spec.at);
  const last = lastBreach(flag);
  if (!escalates && at < last + EVIDENCE_REFRESH_MS) return flag;
  const priority = escalates ? spec.priority : flagPriority(flag);
  const replaced = [FLAG_DETAIL, PRIORITY_URL, LAST_BREACH_URL, ...(escalates ? [SNOOZE_URL] : [])];
  const others = (flag.extension ?? []).filter((e) => !replaced.includes(e.url));
  return {
    ...flag,
    code: escalates ? codeOf(spec) : flag.code,
    extension: [...others, ...extensions(priority, spec.evidence, at > last ? spec.at : new Date(last).toISOString())],
  };
}

/** When the Flag last recorded a breach (ms); a Flag without the record, when it was raised. */
export function lastBreach(flag: Flag): number {
  return Date.parse(flag.extension?.find((e) => e.url === LAST_BREACH_URL)?.valueDateTime ?? flag.period?.start ?? '') || 0;
}

/** Whether a clinician has snoozed the Flag past `now`; an unreadable date snoozes nothing. */
export function isSnoozed(flag: Flag, now = Date.now()): boolean {
  const until = Date.parse(flag.extension?.find((e) => e.url === SNOOZE_URL)?.valueDateTime ?? '');
  return until > now;
}

export function flagPriority(flag: Flag): Priority {
  return (flag.extension?.find((e) => e.url === PRIORITY_URL)?.valueCode as Priority | undefined) ?? 'routine';
}

export const evidenceOf = (flag: Flag): string[] =>
  (flag.extension ?? []).filter((e) => e.url === FLAG_DETAIL).map((e) => e.valueReference?.reference ?? '');

/** Ends the episode: its key moves to ENDED_KEY so the next breach starts a new Flag. */
export function endFlag(flag: Flag, status: Flag['status'], at: string): Flag {
  return {
    ...flag,
    status,
    period: { ...flag.period, end: at },
    identifier: flag.identifier?.map((i) => (i.system === ALERT_KEY ? { ...i, system: ENDED_KEY } : i)),
  };
}

const CATEGORY: Record<NonNullable<AlertSpec['category']>, Coding> = {
  clinical: { system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'clinical', display: 'Clinical' },
  administrative: { system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'admin', display: 'Administrative' },
};

function codeOf({ code, label, codings = [] }: AlertSpec): Flag['code'] {
  return { coding: [{ system: ALERT_SYSTEM, code, display: ALERT_DISPLAY[code] }, ...codings], text: label ?? ALERT_DISPLAY[code] };
}

function extensions(priority: Priority, evidence: Reference[], at: string): Extension[] {
  return [{ url: PRIORITY_URL, valueCode: priority }, { url: LAST_BREACH_URL, valueDateTime: at }, ...evidence.map((valueReference) => ({ url: FLAG_DETAIL, valueReference }))];
}
