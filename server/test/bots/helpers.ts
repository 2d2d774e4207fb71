import type { Bundle, Patient, Practitioner, Resource } from '@medplum/fhirtypes';
import { setTimeout as sleep } from 'node:timers/promises';
import { request, type TestServer } from '../support.ts';

export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';

/** Polls until `check` returns a value (not undefined), or fails after the timeout with the last error. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export async function search<T extends Resource>(server: TestServer, query: string): Promise<T[]> {
  const res = await request<Bundle<T>>('GET', `${server.fhir}/${query}`);
  if (res.status !== 200) throw new Error(`GET ${query}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body.entry ?? []).map((e) => e.resource as T);
}

export async function post<T extends Resource>(server: TestServer, resource: T): Promise<T> {
  const res = await request<T>('POST', `${server.fhir}/${resource.resourceType}`, resource);
  if (res.status !== 201) throw new Error(`POST ${resource.resourceType}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A patient with an active CareTeam of one practitioner. */
export async function enrol(server: TestServer, name: string): Promise<{ patient: string; practitioner: string }> {
  const patient = await post<Patient>(server, { resourceType: 'Patient', name: [{ family: name }] });
  const practitioner = await post<Practitioner>(server, { resourceType: 'Practitioner', name: [{ family: `Dr ${name}` }] });
  await post(server, {
    resourceType: 'CareTeam',
    status: 'active',
    subject: { reference: `Patient/${patient.id}` },
    participant: [{ member: { reference: `Practitioner/${practitioner.id}` } }],
  });
  return { patient: patient.id as string, practitioner: practitioner.id as string };
}
