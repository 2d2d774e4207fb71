import type { MedplumClient } from '@medplum/core';
import { useCallback, useEffect, useState, type Dispatch, type SetStateAction } from 'react';
import type { CarePlan, CareTeam, Communication, Device, Flag, Goal, Observation, Patient } from '@medplum/fhirtypes';
import { loadLatest } from './panel.ts';
import { LOINC } from './vitals.ts';

/** Everything a patient's chart shows besides the time series. */
export interface PatientRecord {
  patient: Patient;
  latest: Observation[];
  flags: Flag[];
  goals: Goal[];
  devices: Device[];
  teams: CareTeam[];
  communications: Communication[];
  carePlans: CarePlan[];
}

export async function loadPatientRecord(medplum: MedplumClient, id: string): Promise<PatientRecord> {
  const subject = `Patient/${id}`;
  const opts = { cache: 'no-cache' as const };
  // the Patient first: a 404 here means "not yours" and nothing else is asked for
  const patient = await medplum.readResource('Patient', id, opts);
  const [latest, flags, goals, devices, teams, communications, carePlans] = await Promise.all([
    loadLatest(medplum, [id]),
    medplum.searchResources('Flag', { patient: subject, _sort: '-date', _count: 50 }, opts),
    medplum.searchResources('Goal', { subject, 'lifecycle-status': 'active', _count: 100 }, opts),
    medplum.searchResources('Device', { patient: subject, _count: 100 }, opts),
    medplum.searchResources('CareTeam', { subject, status: 'active', _count: 50 }, opts),
    medplum.searchResources('Communication', { subject, _sort: '-sent', _count: 50 }, opts),
    medplum.searchResources('CarePlan', { subject, _count: 20 }, opts),
  ]);
  return { patient, latest, flags: [...flags], goals: [...goals], devices: [...devices], teams: [...teams], communications: [...communications], carePlans: [...carePlans] };
}

/** The patient's target range for a LOINC code, from their active Goals. */
export function goalRange(goals: Goal[], code: string): { low?: number; high?: number } | undefined {
  for (const goal of goals) {
    for (const target of goal.target ?? []) {
      if (!target.measure?.coding?.some((c) => c.system === LOINC && c.code === code) || !target.detailRange) continue;
      return { low: target.detailRange.low?.value, high: target.detailRange.high?.value };
    }
  }
  return undefined;
}

/** The record of a screen about one patient: loaded on mount and on `reload`, editable in place by live changes. */
export function usePatientRecord(medplum: MedplumClient, id: string): {
  record: PatientRecord | undefined;
  setRecord: Dispatch<SetStateAction<PatientRecord | undefined>>;
  error: unknown;
  reload: () => void;
} {
  const [record, setRecord] = useState<PatientRecord>();
  const [error, setError] = useState<unknown>();
  const reload = useCallback(() => {
    setError(undefined);
    setRecord(undefined);
    loadPatientRecord(medplum, id).then(setRecord, setError);
  }, [medplum, id]);
  useEffect(reload, [reload]);
  return { record, setRecord, error, reload };
}
