import type { Communication, Extension, Flag, Resource } from '@medplum/fhirtypes';
import type { UpdateOptions, WriteResult, Writer } from '../store/repository.ts';
import { FhirError } from './outcome.ts';

export const ACKNOWLEDGEMENT_EXT = 'https://vigil.health/fhir/StructureDefinition/acknowledgement';

const ACKNOWLEDGEABLE = new Set(['Flag', 'Communication']);
const isAcknowledgement = (e: Extension): boolean => e.url === ACKNOWLEDGEMENT_EXT;

/**
 * Acknowledging an alert is a clinical act the record keeps: when a user sets a Flag from active
 * to inactive, or a Communication to completed, the server writes who and when on the resource
 * (the `acknowledgement` extension: `by`, `at`) and ends the Flag's period if it is open. The
 * extension is the server's alone: whatever a client sends for it is replaced by what is stored.
 * Clients acting on their own (no user) and bots writing through the store record nothing.
 */
export function acknowledge<T extends Resource>(previous: Resource | undefined, next: T, user: string | undefined, now = new Date().toISOString()): T {
  if (!ACKNOWLEDGEABLE.has(next.resourceType)) return next;
  const others = extensions(next).filter((e) => !isAcknowledgement(e));
  let recorded = previous && extensions(previous).find(isAcknowledgement);
  const acknowledged = user !== undefined && previous !== undefined && acknowledges(previous, next);
  if (acknowledged) {
    recorded = { url: ACKNOWLEDGEMENT_EXT, extension: [{ url: 'by', valueReference: { reference: user } }, { url: 'at', valueInstant: now }] };
  }
  const extension = recorded ? [...others, recorded] : others;
  const result: T & { extension?: Extension[] } = { ...next, extension };
  if (extension.length === 0) delete result.extension;
  const flag = result as Resource as Flag;
  if (acknowledged && flag.resourceType === 'Flag' && !flag.period?.end) flag.period = { ...flag.period, end: now };
  return result;
}

const extensions = (r: Resource): Extension[] => (r as { extension?: Extension[] }).extension ?? [];

function acknowledges(previous: Resource, next: Resource): boolean {
  if (previous.resourceType !== next.resourceType) return false;
  if (next.resourceType === 'Flag') return (previous as Flag).status === 'active' && next.status === 'inactive';
  return (previous as Communication).status !== 'completed' && (next as Communication).status === 'completed';
}

/** An update by id under the acknowledgement rule: a Flag or Communication is compared with its current version. */
export async function updateAcknowledging(w: Writer, resource: Resource, user: string | undefined, options: UpdateOptions = {}): Promise<WriteResult> {
  if (!ACKNOWLEDGEABLE.has(resource.resourceType)) return w.update(resource, options);
  const current = await w.read(resource.resourceType, resource.id ?? '', true).catch((err: unknown) => {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) return undefined; // a create, or a re-creation
    throw err;
  });
  const previous = current ? (JSON.parse(current.content as string) as Resource) : undefined;
  return w.update(acknowledge(previous, resource, user), options);
}
