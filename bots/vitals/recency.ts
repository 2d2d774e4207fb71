import type { Observation, Resource } from '@medplum/fhirtypes';
import { effectiveTime } from './normalise.ts';

/**
 * How old a reading may be when it arrives and still be monitored. Older ones are records of the
 * past (a patient's history imported, a backfill after months offline): scoring and alerting on
 * them would page a clinician about something long over, so the acute bots leave them alone.
 */
export const MONITORING_HORIZON_MS = 7 * 86_400_000;

/**
 * Whether an acute bot should look at the Observation: a recent reading, one without a usable time
 * (the bot itself refuses it, with an AuditEvent), or an error correction (its alerts are retracted).
 */
export function isMonitored(resource: Resource, now = Date.now()): boolean {
  const observation = resource as Observation;
  if (observation.status === 'entered-in-error') return true;
  const time = effectiveTime(observation);
  return typeof time !== 'number' || now - time <= MONITORING_HORIZON_MS;
}
