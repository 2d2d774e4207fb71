import type { MedplumClient } from '@medplum/core';
import type { Bundle, CareTeam, Device, Flag, Observation, Patient, Resource } from '@medplum/fhirtypes';
import { BAND_RANK, flagPriority, news2Of, OPEN_ALERTS, patientIdOf, PRIORITY_RANK, type News2 } from './alerts.ts';

/** What a ward tile shows for one patient. */
export interface PatientRow {
  patient: Patient;
  teams: string[];
  /** The newest Observation per code ($lastn). */
  latest: Observation[];
  flags: Flag[];
  devices: Device[];
}

const PAGE = 1000;

/** The clinician's patients: every active CareTeam they are on, with its subject. */
export async function loadPanel(medplum: MedplumClient, practitioner: string): Promise<Map<string, PatientRow>> {
  const teams = await medplum.searchResources('CareTeam', { participant: practitioner, status: 'active', _include: 'CareTeam:subject', _count: PAGE }, { cache: 'no-cache' });
  const found = (teams.bundle.entry ?? []).map((e) => e.resource as Resource | undefined);
  const patients = found.filter((r): r is Patient => r?.resourceType === 'Patient');
  const rows = new Map<string, PatientRow>(patients.map((p) => [p.id as string, { patient: p, teams: [], latest: [], flags: [], devices: [] }]));
  for (const team of found.filter((r): r is CareTeam => r?.resourceType === 'CareTeam')) {
    const row = rows.get(patientIdOf(team.subject?.reference) ?? '');
    if (row && team.name && !row.teams.includes(team.name)) row.teams.push(team.name);
  }
  const [flags, devices] = await Promise.all([
    medplum.searchResources('Flag', { ...OPEN_ALERTS, _count: PAGE }, { cache: 'no-cache' }),
    medplum.searchResources('Device', { _count: PAGE }, { cache: 'no-cache' }),
  ]);
  for (const flag of flags) rows.get(patientIdOf(flag.subject?.reference) ?? '')?.flags.push(flag);
  for (const device of devices) rows.get(patientIdOf(device.patient?.reference) ?? '')?.devices.push(device);
  const ids = [...rows.keys()];
  const batches = Array.from({ length: Math.ceil(ids.length / LASTN_BATCH) }, (_, i) => ids.slice(i * LASTN_BATCH, (i + 1) * LASTN_BATCH));
  for (const observation of (await Promise.all(batches.map((batch) => loadLatest(medplum, batch)))).flat()) {
    rows.get(patientIdOf(observation.subject?.reference) ?? '')?.latest.push(observation);
  }
  return rows;
}

/** Patients per $lastn request: one request for a ward, a URL of a few kilobytes. */
const LASTN_BATCH = 100;

/** The newest Observation of each code for each patient (vitals and NEWS2 alike). */
export async function loadLatest(medplum: MedplumClient, patientIds: string[]): Promise<Observation[]> {
  if (patientIds.length === 0) return [];
  const url = medplum.fhirUrl('Observation', '$lastn');
  url.search = new URLSearchParams({ patient: patientIds.join(','), max: '1' }).toString();
  const bundle = await medplum.get<Bundle<Observation>>(url, { cache: 'no-cache' });
  return (bundle.entry ?? []).map((e) => e.resource as Observation);
}

/** A pushed Observation replaces the one of the same code if it is newer. */
export function mergeObservation(latest: Observation[], observation: Observation): Observation[] {
  const key = codeKey(observation);
  const at = effective(observation);
  const current = latest.find((o) => codeKey(o) === key);
  if (current && effective(current) > at) return latest;
  if (observation.status === 'entered-in-error') return latest.filter((o) => o.id !== observation.id);
  return [...latest.filter((o) => codeKey(o) !== key), observation];
}

/** A pushed Flag: kept while active, dropped when it ends. */
export function mergeFlag(flags: Flag[], flag: Flag): Flag[] {
  const others = flags.filter((f) => f.id !== flag.id);
  return flag.status === 'active' ? [...others, flag] : others;
}

export const news2OfRow = (row: PatientRow): News2 | undefined =>
  row.latest.map(news2Of).find((n) => n !== undefined);

/** Acuity: the most urgent active alert, then the NEWS2 band and score. */
export function acuity(row: PatientRow): number {
  const alert = row.flags.length ? 1 + Math.max(...row.flags.map((f) => PRIORITY_RANK[flagPriority(f)])) : 0;
  const news2 = news2OfRow(row);
  return alert * 1000 + (news2 ? BAND_RANK[news2.band] * 100 + news2.score : 0);
}

const codeKey = (o: Observation): string => o.code?.coding?.map((c) => `${c.system}|${c.code}`).sort().join(',') ?? '';
const effective = (o: Observation): string => o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued ?? '';
