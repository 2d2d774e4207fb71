import type { CareTeam, Patient, Practitioner } from '@medplum/fhirtypes';
import type { Repository } from '../store/repository.ts';
import type { UserStore } from './users.ts';

export const DEMO_PASSWORD = 'vigil-demo';
export const DEMO_CLINICIAN = 'clinician@demo.vigil';
export const DEMO_PATIENT = 'patient@demo.vigil';

/** Demo mode: a clinician and a patient on one care team, each with a login. Idempotent. */
export async function installDemoUsers(repo: Repository, users: UserStore): Promise<void> {
  const practitioner: Practitioner = { resourceType: 'Practitioner', id: 'demo-clinician', active: true, name: [{ given: ['Dana'], family: 'Clinician', prefix: ['Dr'] }] };
  const patient: Patient = { resourceType: 'Patient', id: 'demo-patient', active: true, name: [{ given: ['Pat'], family: 'Demo' }], gender: 'female', birthDate: '1950-04-02' };
  const team: CareTeam = {
    resourceType: 'CareTeam',
    id: 'demo-care-team',
    status: 'active',
    name: 'Demo remote monitoring team',
    subject: { reference: 'Patient/demo-patient' },
    participant: [{ member: { reference: 'Practitioner/demo-clinician' } }],
  };
  for (const resource of [practitioner, patient, team]) {
    const existing = await repo.readVersion(resource.resourceType, resource.id as string).catch(() => undefined);
    if (!existing) await repo.update(resource);
  }
  if (!(await users.find(DEMO_CLINICIAN))) await users.put(DEMO_CLINICIAN, DEMO_PASSWORD, 'Practitioner/demo-clinician');
  if (!(await users.find(DEMO_PATIENT))) await users.put(DEMO_PATIENT, DEMO_PASSWORD, 'Patient/demo-patient');
}
