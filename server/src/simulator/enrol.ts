import type { Device, Patient, Resource } from '@medplum/fhirtypes';
import type { SimulatedPatient } from './generator.ts';
import type { AuthHeaders } from './token.ts';

export const SIMULATOR_SYSTEM = 'urn:vigil:simulator';
const CONCURRENCY = 8;

/**
 * Creates each simulated Patient and its Device, bound to it, unless they exist already:
 * conditional creates (`If-None-Exist` on the identifier), so re-running is harmless.
 */
export async function enrol(fhirBase: string, patients: readonly SimulatedPatient[], auth: AuthHeaders): Promise<void> {
  const queue = [...patients];
  const worker = async () => {
    for (let p = queue.shift(); p; p = queue.shift()) {
      const patientId = await createOnce(fhirBase, patientResource(p), auth);
      await createOnce(fhirBase, deviceResource(p, patientId), auth);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** The id of the resource with the same simulator identifier: found, or created now. */
async function createOnce(fhirBase: string, resource: Patient | Device, auth: AuthHeaders): Promise<string> {
  const identifier = resource.identifier?.[0]?.value as string;
  const res = await fetch(`${fhirBase}/${resource.resourceType}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/fhir+json',
      accept: 'application/fhir+json',
      prefer: 'return=representation',
      'if-none-exist': `identifier=${SIMULATOR_SYSTEM}|${identifier}`,
      ...(await auth()),
    },
    body: JSON.stringify(resource),
  });
  if (!res.ok) throw new Error(`Enrolling ${resource.resourceType} ${identifier} failed: ${res.status} ${(await res.text()).slice(0, 300)}`);
  return ((await res.json()) as Resource).id as string;
}

function patientResource(p: SimulatedPatient): Patient {
  return {
    resourceType: 'Patient',
    identifier: [{ system: SIMULATOR_SYSTEM, value: p.patientKey }],
    active: true,
    name: [{ given: [p.name.given], family: p.name.family }],
    gender: p.gender,
    birthDate: p.birthDate,
  };
}

function deviceResource(p: SimulatedPatient, patientId: string): Device {
  return {
    resourceType: 'Device',
    identifier: [{ system: SIMULATOR_SYSTEM, value: p.deviceId }],
    status: 'active',
    deviceName: [{ name: 'Vigil simulated wearable', type: 'user-friendly-name' }],
    patient: { reference: `Patient/${patientId}` },
  };
}
