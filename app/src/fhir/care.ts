import type { MedplumClient } from '@medplum/core';
import type { Communication, Flag } from '@medplum/fhirtypes';
import { ALERT_KEY, ENDED_KEY, SNOOZED_URL } from './alerts.ts';

export const CATEGORY_SYSTEM = 'https://vigil.health/fhir/CodeSystem/communication-category';
type Kind = 'note' | 'message';

/**
 * Ends the alert: the Flag becomes inactive (the server records who and when) and the alert
 * Communications about it are completed, so nobody else is chased for it.
 */
export async function acknowledge(medplum: MedplumClient, flag: Flag): Promise<Flag> {
  const now = new Date().toISOString();
  const ended = await medplum.updateResource<Flag>({
    ...flag,
    status: 'inactive',
    period: { ...flag.period, end: now },
    // the episode is over: the next breach of the rule opens a new alert
    identifier: flag.identifier?.map((i) => (i.system === ALERT_KEY ? { ...i, system: ENDED_KEY } : i)),
    extension: flag.extension?.filter((e) => e.url !== SNOOZED_URL),
  });
  // R4 has no Communication `about` search parameter: the patient's open ones, filtered here
  const open = await medplum.searchResources('Communication', { subject: flag.subject?.reference ?? '', status: 'in-progress', _count: 1000 }, { cache: 'no-cache' });
  const about = open.filter((c) => c.about?.some((a) => a.reference === `Flag/${flag.id}`));
  await Promise.all(about.map((c) => medplum.updateResource<Communication>({ ...c, status: 'completed' })));
  return ended;
}

/** Keeps the alert open but quiet until `until`; an escalation still gets through. */
export function snooze(medplum: MedplumClient, flag: Flag, minutes: number): Promise<Flag> {
  const until = new Date(Date.now() + minutes * 60_000).toISOString();
  return medplum.updateResource<Flag>({
    ...flag,
    extension: [...(flag.extension ?? []).filter((e) => e.url !== SNOOZED_URL), { url: SNOOZED_URL, valueDateTime: until }],
  });
}

/** A clinical note on an alert, or a message to the patient (or from the patient to the care team). */
export function communicate(medplum: MedplumClient, options: {
  kind: Kind;
  patientId: string;
  sender: string;
  text: string;
  recipients?: Communication['recipient'];
  about?: Communication['about'];
}): Promise<Communication> {
  return medplum.createResource<Communication>({
    resourceType: 'Communication',
    status: 'completed',
    category: [{ coding: [{ system: CATEGORY_SYSTEM, code: options.kind }] }],
    subject: { reference: `Patient/${options.patientId}` },
    sender: { reference: options.sender },
    ...(options.recipients?.length ? { recipient: options.recipients } : {}),
    ...(options.about?.length ? { about: options.about } : {}),
    sent: new Date().toISOString(),
    payload: [{ contentString: options.text }],
  });
}

export const isKind = (c: Communication, kind: Kind): boolean =>
  !!c.category?.some((cat) => cat.coding?.some((k) => k.system === CATEGORY_SYSTEM && k.code === kind));
