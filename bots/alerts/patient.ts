import type { Observation } from '@medplum/fhirtypes';
import type { FhirClient } from '../runtime/manifest.ts';
import { LOINC } from '../vitals/codes.ts';
import { normaliseObservation } from '../vitals/normalise.ts';
import type { Reading } from '../vitals/reading.ts';

const MAX_READINGS = 500;

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
    'status:not': 'entered-in-error,cancelled,registered',
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
