import type { AuditEvent, Bundle, Observation, Resource } from '@medplum/fhirtypes';
import { request, type TestServer } from '../support.ts';
import { eventually, LOINC, search, UCUM } from './helpers.ts';

/** The AuditEvents of bot runs (not of REST writes) about a resource, optionally of one bot. */
export async function botRuns(server: TestServer, reference: string, bot?: string): Promise<AuditEvent[]> {
  const runs = await search<AuditEvent>(server, `AuditEvent?entity=${reference}&type=https://vigil.health/fhir/CodeSystem/audit-event-type|bot-run&_count=100`);
  return bot ? runs.filter((r) => r.subtype?.[0].code === bot) : runs;
}

/**
 * What bots' scopes refused (bots/runtime/scopes.ts): a suite ending with none shows that the
 * built-in bots' code stayed within their manifests' scopes.
 */
export async function scopeRefusals(server: TestServer): Promise<string[]> {
  const failed = await search<AuditEvent>(server, 'AuditEvent?type=https://vigil.health/fhir/CodeSystem/audit-event-type|bot-run&outcome=8&_count=1000');
  return failed.map((a) => a.outcomeDesc ?? '').filter((d) => / may not \w+ \w+: its scopes are /.test(d));
}

/** Waits until `bot` has run on the resource (or `times` runs), returning the runs. */
export function ranOn(server: TestServer, reference: string, bot: string, times = 1): Promise<AuditEvent[]> {
  return eventually(async () => {
    const runs = await botRuns(server, reference, bot);
    return runs.length >= times ? runs : undefined;
  }, `${bot} on ${reference}`);
}

const UNITS: Record<string, string> = { '9279-1': '/min', '2708-6': '%', '8480-6': 'mm[Hg]', '8867-4': '/min', '8310-5': 'Cel', '29463-7': 'kg' };

/** A vital-sign Observation taken at `at` (epoch ms). */
export function reading(patient: string, code: string, value: number, at: number, extra: Partial<Observation> = {}): Observation {
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: LOINC, code }] },
    subject: { reference: `Patient/${patient}` },
    effectiveDateTime: new Date(at).toISOString(),
    valueQuantity: { value, unit: UNITS[code], system: UCUM, code: UNITS[code] },
    ...extra,
  };
}

/** A vital-sign Observation taken `minutesAgo` minutes before now. */
export const vital = (patient: string, code: string, value: number, minutesAgo: number): Observation => reading(patient, code, value, Date.now() - minutesAgo * 60_000);

/** Creates the resources in one transaction; returns them as stored. */
export async function createAll<T extends Resource>(server: TestServer, resources: T[]): Promise<T[]> {
  const res = await request<Bundle>('POST', server.fhir, {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map((resource) => ({ resource, request: { method: 'POST', url: resource.resourceType } })),
  }, { prefer: 'return=representation' });
  if (res.status !== 200) throw new Error(`transaction: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body.entry ?? []).map((e) => e.resource as T);
}

/** PUTs a new version of a resource, failing loudly. */
export async function put<T extends Resource>(server: TestServer, resource: T): Promise<T> {
  const res = await request<T>('PUT', `${server.fhir}/${resource.resourceType}/${resource.id}`, resource);
  if (res.status !== 200) throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
