import type { Database } from '../store/database.ts';
import { dbAdapter } from './adapter.ts';

/** The SMART launch context chosen during authorization (patient, encounter in context), kept per grant. */
export interface LaunchContext {
  patient?: string;
  encounter?: string;
  /** false when the app runs inside Vigil, which already shows the patient (EHR launch). */
  need_patient_banner?: boolean;
}

const KIND = 'SmartLaunchContext';

export async function saveLaunchContext(db: Database, grantId: string, context: LaunchContext, ttlSeconds: number): Promise<void> {
  const Adapter = dbAdapter(db);
  // grantId in the payload: revoking the grant drops its context too
  await new Adapter(KIND).upsert(grantId, { ...context, grantId }, ttlSeconds);
}

export async function loadLaunchContext(db: Database, grantId: string | undefined): Promise<LaunchContext | undefined> {
  if (!grantId) return undefined;
  const Adapter = dbAdapter(db);
  return (await new Adapter(KIND).find(grantId)) as LaunchContext | undefined;
}
