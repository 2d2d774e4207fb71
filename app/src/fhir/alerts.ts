import type { Communication, Flag, Observation } from '@medplum/fhirtypes';
import { NEWS2_CODE } from './vitals.ts';

/**
 * R4 has no Flag status search parameter; Vigil's alert Flags carry their episode key under
 * ALERT_KEY while open and under ENDED_KEY once over, so `identifier=ALERT_KEY|` finds open alerts.
 */
export const ALERT_KEY = 'urn:vigil:alert';
export const ENDED_KEY = 'urn:vigil:alert-ended';
export const OPEN_ALERTS = { identifier: `${ALERT_KEY}|` };
export const PRIORITY_URL = 'https://vigil.health/fhir/StructureDefinition/alert-priority';
export const SNOOZED_URL = 'https://vigil.health/fhir/StructureDefinition/alert-snoozed-until';
export const ACKNOWLEDGEMENT_URL = 'https://vigil.health/fhir/StructureDefinition/acknowledgement';

export type Priority = NonNullable<Communication['priority']>;
export const PRIORITY_RANK: Record<Priority, number> = { routine: 0, urgent: 1, asap: 2, stat: 3 };
/** Filled badge colours with AA contrast for their (auto-contrasted) text. */
export const PRIORITY_COLOR: Record<Priority, string> = { routine: 'blue.8', urgent: 'orange.6', asap: 'red.9', stat: 'red.9' };
export const PRIORITY_LABEL: Record<Priority, string> = { routine: 'Advice', urgent: 'Urgent', asap: 'Urgent (ASAP)', stat: 'Emergency' };

export const flagPriority = (flag: Flag): Priority =>
  (flag.extension?.find((e) => e.url === PRIORITY_URL)?.valueCode as Priority | undefined) ?? 'routine';

export const snoozedUntil = (flag: Flag): string | undefined => flag.extension?.find((e) => e.url === SNOOZED_URL)?.valueDateTime;

export const isSnoozed = (flag: Flag, now = Date.now()): boolean => {
  const until = snoozedUntil(flag);
  return !!until && Date.parse(until) > now;
};

export const alertTitle = (flag: Flag): string => flag.code?.text ?? flag.code?.coding?.[0]?.display ?? 'Alert';

export const patientIdOf = (reference: string | undefined): string | undefined =>
  reference?.startsWith('Patient/') ? reference.slice('Patient/'.length) : undefined;

/** Most urgent first, then oldest first: the one waiting longest at a level gets seen first. */
export function byUrgency(a: Flag, b: Flag): number {
  return PRIORITY_RANK[flagPriority(b)] - PRIORITY_RANK[flagPriority(a)] || (a.period?.start ?? '').localeCompare(b.period?.start ?? '');
}

/** Who acknowledged and when, as the server recorded it. */
export function acknowledgement(resource: Flag | Communication): { by?: string; at?: string } | undefined {
  const ext = resource.extension?.find((e) => e.url === ACKNOWLEDGEMENT_URL);
  if (!ext) return undefined;
  return {
    by: ext.extension?.find((e) => e.url === 'by')?.valueReference?.reference,
    at: ext.extension?.find((e) => e.url === 'at')?.valueInstant,
  };
}

export type Band = 'low' | 'low-medium' | 'medium' | 'high';
export const BAND_COLOR: Record<Band, string> = { low: 'teal.9', 'low-medium': 'yellow.5', medium: 'orange.6', high: 'red.9' };
export const BAND_LABEL: Record<Band, string> = { low: 'Low', 'low-medium': 'Low–medium', medium: 'Medium', high: 'High' };
export const BAND_RANK: Record<Band, number> = { low: 0, 'low-medium': 1, medium: 2, high: 3 };

export interface News2 { score: number; band: Band; at: string }

export function news2Of(observation: Observation | undefined): News2 | undefined {
  if (!observation?.code?.coding?.some((c) => c.code === NEWS2_CODE) || observation.valueInteger === undefined) return undefined;
  const band = observation.interpretation?.[0]?.coding?.[0]?.code as Band | undefined;
  return {
    score: observation.valueInteger,
    band: band && band in BAND_COLOR ? band : bandOf(observation.valueInteger),
    at: observation.effectiveDateTime ?? observation.issued ?? '',
  };
}

/** Without sub-scores the low-medium band cannot be told apart; the bot's interpretation says it. */
const bandOf = (score: number): Band => (score >= 7 ? 'high' : score >= 5 ? 'medium' : 'low');
