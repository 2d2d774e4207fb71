import type { Observation } from '@medplum/fhirtypes';
import type { FhirClient } from '../runtime/manifest.ts';
import { codesOf, LOINC } from '../vitals/codes.ts';
import { normaliseObservation } from '../vitals/normalise.ts';
import type { Reading } from '../vitals/reading.ts';

const MAX_READINGS = 500;
/** Newest readings of each code looked at for one taken after a late reading: a few, in case the newest are unusable. */
const NEWER_READINGS = 5;
/** Statuses whose Observation carries no result. */
const NO_RESULT = 'entered-in-error,cancelled,registered';

/**
 * The patient's usable readings of the given LOINC codes with effective time in [from, to], the
 * newest MAX_READINGS of each code; unusable ones are left out. Read by `$lastn`, each code's rows
 * from its own index range: a search by subject and date read every code's readings in the window
 * to keep this one's, ~70 µs of PostgreSQL per reading kept once a wearable streams five measures.
 */
export async function readingsBetween(fhir: FhirClient, patientId: string, codes: readonly string[], from: number, to: number): Promise<Reading[]> {
  return readingsOf(await latestObservations(fhir, patientId, codes.map((c) => `${LOINC}|${c}`), from, to, MAX_READINGS));
}

/**
 * The newest `max` Observations of each of the codes (`system|code`) with effective time in
 * [from, to], each code's newest first, by `$lastn`: a handful of rows however many readings the
 * window holds, and a stream of one measure never hides another's last reading. Observations with
 * a status that carries no result are left out, so they cannot hide the results before them.
 */
export function latestObservations(fhir: FhirClient, patientId: string, codes: readonly string[], from: number, to: number, max: number): Promise<Observation[]> {
  return fhir.lastn({
    subject: `Patient/${patientId}`,
    code: codes.join(','),
    date: [`ge${new Date(from).toISOString()}`, `le${new Date(to).toISOString()}`],
    'status:not': NO_RESULT,
    max: String(max),
  });
}

/** The usable readings among the Observations. */
export function readingsOf(observations: readonly Observation[]): Reading[] {
  return observations.flatMap((o) => {
    const n = normaliseObservation(o);
    return n.kind === 'readings' ? n.readings : [];
  });
}

/**
 * Whether a usable reading of a measure of the Observation's `readings`, taken after it, had already
 * arrived when it did (`meta.lastUpdated`). The newest reading decided the current state of its
 * measure, so one that arrives late (a device catching up) must not raise an alert about a state
 * that may be over. Readings that arrive with or after it do not count: a stream outrunning the
 * bots is not late. One `$lastn`.
 */
export async function hasNewerReading(fhir: FhirClient, patientId: string, observation: Observation, readings: readonly Reading[]): Promise<boolean> {
  const arrived = observation.meta?.lastUpdated;
  if (!arrived || readings.length === 0) return false;
  const codes = [...new Set(readings.flatMap((r) => codesOf(r.measure)))];
  const newer = readingsOf(await fhir.lastn({
    subject: `Patient/${patientId}`,
    code: codes.map((c) => `${LOINC}|${c}`).join(','),
    date: `gt${new Date(Math.min(...readings.map((r) => r.time))).toISOString()}`,
    _lastUpdated: `lt${arrived}`,
    'status:not': NO_RESULT,
    max: String(NEWER_READINGS),
  }));
  return readings.some((r) => newer.some((n) => n.measure === r.measure && n.time > r.time));
}
