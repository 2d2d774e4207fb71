import type { MedplumClient } from '@medplum/core';
import type { CarePlan, CarePlanActivity, CareTeam, Device, Goal } from '@medplum/fhirtypes';
import { LOINC, type Vital } from './vitals.ts';

export const MONITORING_CATEGORY = { coding: [{ system: 'https://vigil.health/fhir/CodeSystem/care-plan-category', code: 'remote-monitoring', display: 'Remote monitoring' }] };

/** A personal target for one vital (what the threshold and NEWS2 bots read). Replaces an older one. */
export async function setTarget(medplum: MedplumClient, patientId: string, vital: Vital, low: number | undefined, high: number | undefined, existing?: Goal): Promise<Goal> {
  const code = vital.codes[0];
  const quantity = (value: number) => ({ value, unit: vital.unit, system: 'http://unitsofmeasure.org', code: ucum(vital.unit) });
  const goal: Goal = {
    resourceType: 'Goal',
    lifecycleStatus: 'active',
    description: { text: `${vital.label} target` },
    subject: { reference: `Patient/${patientId}` },
    target: [{
      measure: { coding: [{ system: LOINC, code, display: vital.label }] },
      detailRange: { ...(low !== undefined ? { low: quantity(low) } : {}), ...(high !== undefined ? { high: quantity(high) } : {}) },
    }],
  };
  return existing ? medplum.updateResource({ ...goal, id: existing.id }) : medplum.createResource(goal);
}

export const endTarget = (medplum: MedplumClient, goal: Goal): Promise<Goal> => medplum.updateResource({ ...goal, lifecycleStatus: 'cancelled' });

const ucum = (unit: string): string => ({ '/min': '/min', '%': '%', mmHg: 'mm[Hg]', '°C': 'Cel', kg: 'kg' })[unit] ?? unit;

/** The monitoring plan: one active CarePlan per patient whose activities schedule measurements. */
export function monitoringPlan(plans: CarePlan[]): CarePlan | undefined {
  return plans.find((p) => p.status === 'active' && p.category?.some((c) => c.coding?.some((k) => k.code === 'remote-monitoring')))
    ?? plans.find((p) => p.category?.some((c) => c.coding?.some((k) => k.code === 'remote-monitoring')));
}

export function scheduleActivity(vital: Vital, timesPerDay: number): CarePlanActivity {
  return {
    detail: {
      status: 'scheduled',
      code: { coding: [{ system: LOINC, code: vital.component?.panel ?? vital.codes[0], display: vital.label }] },
      scheduledTiming: { repeat: { frequency: timesPerDay, period: 1, periodUnit: 'd' } },
      description: `${vital.plain}: ${timesPerDay} time${timesPerDay > 1 ? 's' : ''} a day`,
    },
  };
}

/** Starts monitoring (a new or re-activated plan) or stops it (the plan completes). */
export async function setMonitoring(medplum: MedplumClient, patientId: string, plan: CarePlan | undefined, on: boolean): Promise<CarePlan> {
  const now = new Date().toISOString();
  if (!plan) {
    return medplum.createResource<CarePlan>({
      resourceType: 'CarePlan', status: 'active', intent: 'plan', category: [MONITORING_CATEGORY], title: 'Remote monitoring',
      subject: { reference: `Patient/${patientId}` }, period: { start: now }, activity: [],
    });
  }
  return medplum.updateResource<CarePlan>(on
    ? { ...plan, status: 'active', period: { start: now } }
    : { ...plan, status: 'completed', period: { ...plan.period, end: now } });
}

/**
 * Binds a device to the patient by its identifier (serial number or the id its gateway reports). A
 * device already bound to another patient is refused rather than silently moved.
 */
export async function enrolDevice(medplum: MedplumClient, patientId: string, identifier: string, name: string): Promise<Device> {
  const found = await medplum.searchResources('Device', { identifier }, { cache: 'no-cache' });
  const patient = { reference: `Patient/${patientId}` };
  const device = found[0];
  if (device) {
    if (device.patient?.reference && device.patient.reference !== patient.reference) throw new Error('This device is already bound to another patient; unbind it there first.');
    return medplum.updateResource<Device>({ ...device, patient, status: 'active' });
  }
  return medplum.createResource<Device>({
    resourceType: 'Device', status: 'active', identifier: [{ value: identifier }], patient,
    ...(name ? { deviceName: [{ name, type: 'user-friendly-name' }] } : {}),
  });
}

export function unbindDevice(medplum: MedplumClient, device: Device): Promise<Device> {
  const { patient: _patient, ...rest } = device;
  return medplum.updateResource<Device>({ ...rest, status: 'inactive' });
}

/** Adds a member to the patient's team (creating the team if there is none). */
export async function addTeamMember(medplum: MedplumClient, patientId: string, team: CareTeam | undefined, member: string): Promise<CareTeam> {
  if (!team) {
    return medplum.createResource<CareTeam>({
      resourceType: 'CareTeam', status: 'active', name: 'Remote monitoring', subject: { reference: `Patient/${patientId}` },
      participant: [{ member: { reference: member } }],
    });
  }
  if (team.participant?.some((p) => p.member?.reference === member)) return team;
  return medplum.updateResource<CareTeam>({ ...team, participant: [...(team.participant ?? []), { member: { reference: member } }] });
}

export function removeTeamMember(medplum: MedplumClient, team: CareTeam, member: string): Promise<CareTeam> {
  return medplum.updateResource<CareTeam>({ ...team, participant: (team.participant ?? []).filter((p) => p.member?.reference !== member) });
}
