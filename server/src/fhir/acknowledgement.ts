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
 * (`writeAcknowledging` also ends the Flags a clinician's completed Communication is about.)
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
  const previous = await currentOf(w, resource.resourceType, resource.id ?? '');
  return writeAcknowledging(w, previous, resource, user, options);
}

/**
 * Writes `next` over `previous` under the acknowledgement rule. A clinician completing an alert's
 * Communication acknowledges the alert itself: the active Flags it is `about` end with it, in the
 * same transaction, recorded as acknowledged by them. A patient completing one does not end a
 * clinical alert.
 */
export async function writeAcknowledging(w: Writer, previous: Resource | undefined, next: Resource, user: string | undefined, options: UpdateOptions = {}): Promise<WriteResult> {
  const now = new Date().toISOString();
  const written = await w.update(acknowledge(previous, next, user, now), options);
  if (next.resourceType === 'Communication' && previous && user && CLINICIAN.test(user) && acknowledges(previous, next)) {
    for (const about of (next as Communication).about ?? []) {
      const id = /^Flag\/([^/]+)$/.exec(about.reference ?? '')?.[1];
      const flag = id && ((await currentOf(w, 'Flag', id)) as Flag | undefined);
      if (flag && flag.status === 'active') await w.update(acknowledge(flag, { ...flag, status: 'inactive' }, user, now));
    }
  }
  return written;
}

const CLINICIAN = /^(Practitioner|PractitionerRole)\//;

/** The current version, locked for the transaction; undefined when there is none (or it was deleted). */
async function currentOf(w: Writer, type: string, id: string): Promise<Resource | undefined> {
  const current = await w.read(type, id, true).catch((err: unknown) => {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) return undefined; // a create, or a re-creation
    throw err;
  });
  return current ? (JSON.parse(current.content as string) as Resource) : undefined;
}
