import type { CareTeam, Communication, Device, Flag, Reference } from '@medplum/fhirtypes';
import type { FhirClient } from '../runtime/manifest.ts';
import type { Priority } from './codes.ts';
import type { AlertSpec } from './flag.ts';

export const COMMUNICATION_PROFILE = 'https://vigil.health/fhir/StructureDefinition/vigil-alert-communication';
/** One Communication per Flag and priority: `<flag id>/<priority>`. */
export const NOTICE_KEY = 'urn:vigil:alert-communication';
/** Every Communication of a patient's rule, across Flags: `<patient>/<rule>`, for suppression. */
export const RULE_KEY = 'urn:vigil:alert-rule';

type Recipient = NonNullable<Communication['recipient']>[number];

export function alertCommunication(flag: Flag, spec: AlertSpec, priority: Priority, recipient: Recipient[], sender: Reference<Device>): Communication {
  return {
    resourceType: 'Communication',
    meta: { profile: [COMMUNICATION_PROFILE] },
    identifier: [
      { system: NOTICE_KEY, value: `${flag.id}/${priority}` },
      { system: RULE_KEY, value: `${spec.patientId}/${spec.rule}` },
    ],
    status: 'in-progress',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'alert', display: 'Alert' }] }],
    priority,
    subject: { reference: `Patient/${spec.patientId}` },
    about: [{ reference: `Flag/${flag.id}` }, ...spec.evidence],
    recipient,
    sender,
    sent: new Date().toISOString(),
    payload: [{ contentString: `${flag.code?.text ?? spec.code}: ${spec.text}` }],
  };
}

/** Members of the patient's active CareTeams whose participation has not ended, each once. */
export async function careTeamRecipients(fhir: FhirClient, patientId: string, now = Date.now()): Promise<Recipient[]> {
  const teams = await fhir.search<CareTeam>('CareTeam', { patient: `Patient/${patientId}`, status: 'active', _count: '50' });
  const seen = new Map<string, Recipient>();
  for (const p of teams.flatMap((t) => t.participant ?? [])) {
    const ref = p.member?.reference;
    if (ref && !(p.period?.end && Date.parse(p.period.end) < now)) seen.set(ref, p.member as Recipient);
  }
  return [...seen.values()];
}
