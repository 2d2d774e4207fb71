import type { Measurement } from './types.ts';

export interface IdentityGroup {
  readonly deviceId: string;
  readonly patientId?: string;
  readonly encounterId?: string;
  readonly measurements: Measurement[];
}

/** Splits measurements by the identities the caller resolves (device, patient, encounter) before toObservations. */
export function groupByIdentity(measurements: readonly Measurement[]): IdentityGroup[] {
  const groups = new Map<string, IdentityGroup>();
  for (const m of measurements) {
    const key = JSON.stringify([m.deviceId, m.patientId ?? null, m.encounterId ?? null]);
    const group = groups.get(key) ?? { deviceId: m.deviceId, patientId: m.patientId, encounterId: m.encounterId, measurements: [] };
    group.measurements.push(m);
    groups.set(key, group);
  }
  return [...groups.values()];
}
