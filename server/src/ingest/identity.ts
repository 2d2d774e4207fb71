import type { Device, Encounter, Patient, Reference, Resource } from '@medplum/fhirtypes';
import { FhirError } from '../fhir/outcome.ts';
import { lockCriteria, matchIds } from '../store/conditional.ts';
import type { Repository, Writer } from '../store/repository.ts';
import type { IdentityGroup, IdentityResolution } from './template/index.ts';

export const DEVICE_SYSTEM = 'urn:vigil:device-id';
export const PATIENT_SYSTEM = 'urn:vigil:patient-id';

export interface Resolved {
  device: Reference<Device>;
  subject: Reference<Patient>;
  encounter?: Reference<Encounter>;
}

export type Identity = Resolved | { reject: string };

/** The resources an identity was resolved from, by reference, with the version read ("Device/1" → "3"): it holds while they do. */
type Sources = Map<string, string>;

type Resolution = { identity: Resolved; sources: Sources } | { reject: string };

/** The types whose changes can alter an identity. */
const SOURCE_TYPES = ['Device', 'Patient', 'Encounter'] as const;

/**
 * Bounds what versions cannot reveal: another Device or Encounter taking the same identifier
 * (which makes it ambiguous) is seen within this time. Changes to the resources themselves are
 * seen at once, through any replica (see revalidate).
 */
const CACHE_MS = 30_000;

/**
 * Which Device, Patient and Encounter a message's ids stand for. `Lookup` needs a Device carrying
 * the device id as an identifier and bound to a patient, whose Patient carries the message's
 * patient id (when it has one) as an identifier. `Create` makes Patient and Device (idempotently,
 * under an advisory lock) and never re-binds a device that belongs to another patient. In both
 * modes an encounter id must be the identifier of an Encounter of that patient: Encounters are
 * never created (see README.md).
 */
export class IdentityResolver {
  readonly #repo: Repository;
  readonly #cache = new Map<string, { identity: Resolved; sources: Sources; at: number }>();

  constructor(repo: Repository) {
    this.#repo = repo;
  }

  /**
   * Drops the cached identities of `groups` that a change has outdated, whichever replica made it:
   * one primary-key query for the whole batch, so that a Device re-bound elsewhere never sends
   * readings to its former patient. Call before resolving a batch's groups.
   */
  async revalidate(mode: IdentityResolution, groups: readonly IdentityGroup[]): Promise<void> {
    const cached = new Map<string, Sources>();
    for (const group of groups) {
      const key = cacheKey(mode, group);
      const hit = this.#fresh(key);
      if (hit) cached.set(key, hit.sources);
    }
    if (cached.size === 0) return;
    const current = await this.#versions(new Set([...cached.values()].flatMap((sources) => [...sources.keys()])));
    for (const [key, sources] of cached) {
      if ([...sources].some(([reference, version]) => current.get(reference) !== version)) this.#cache.delete(key);
    }
  }

  async resolve(mode: IdentityResolution, group: IdentityGroup): Promise<Identity> {
    const key = cacheKey(mode, group);
    const hit = this.#fresh(key);
    if (hit) return hit.identity;
    const resolution = await this.#resolve(mode, group);
    // rejections are not cached: the device may be enrolled a moment later
    if ('reject' in resolution) return resolution;
    this.#cache.set(key, { ...resolution, at: Date.now() });
    return resolution.identity;
  }

  #fresh(key: string) {
    const hit = this.#cache.get(key);
    return hit && Date.now() - hit.at < CACHE_MS ? hit : undefined;
  }

  /**
   * The current version of each of the resources that exist and are not deleted. A join on the ids
   * makes one primary-key probe each: `id = ANY($1)`, in a prepared statement's generic plan, took
   * twice as long (~7 ms against ~3.5 ms for 500 Devices, executor time on a loaded 2-core machine).
   */
  async #versions(references: Set<string>): Promise<Map<string, string>> {
    const ids = SOURCE_TYPES.map((type) => [...references].filter((r) => r.startsWith(`${type}/`)).map((r) => r.slice(type.length + 1)));
    const rows = await this.#repo.db.query<{ reference: string; version: string }>(
      SOURCE_TYPES.map((type, i) =>
        `SELECT '${type}/' || r.id AS reference, r.version_id::text AS version FROM unnest($${i + 1}::text[]) k JOIN "${type}" r ON r.id = k WHERE NOT r.deleted`).join(' UNION ALL '),
      ids,
    );
    return new Map(rows.map((r) => [r.reference, r.version]));
  }

  async #resolve(mode: IdentityResolution, { deviceId, patientId, encounterId }: IdentityGroup): Promise<Resolution> {
    const resolution = mode === 'Lookup' ? await this.#lookup(deviceId, patientId) : await this.#repo.transaction((w) => this.#create(w, deviceId, patientId));
    return 'reject' in resolution || encounterId === undefined ? resolution : this.#encounter(resolution.identity, resolution.sources, encounterId);
  }

  async #lookup(deviceId: string, patientId: string | undefined): Promise<Resolution> {
    const ids = await matchIds(this.#repo.db, 'Device', `identifier=${escapeToken(deviceId)}`, this.#repo.baseUrl);
    if (ids.length === 0) return { reject: `Unknown device "${deviceId}": no Device has it as an identifier` };
    if (ids.length > 1) return { reject: `Device id "${deviceId}" is the identifier of several Devices` };
    const device = await this.#read<Device>(`Device/${ids[0]}`);
    if (!device) return { reject: `Unknown device "${deviceId}": Device/${ids[0]} was deleted` };
    const subject = device.resource.patient?.reference;
    if (!subject) return { reject: `Device/${ids[0]} ("${deviceId}") is not bound to a patient` };
    const sources: Sources = new Map([[`Device/${ids[0]}`, device.version]]);
    if (patientId !== undefined) {
      // A reading must never land in another patient's record: the message's patient id must be the device's patient's.
      const patient = await this.#read<Patient>(subject);
      if (!patient) return { reject: `Device/${ids[0]} ("${deviceId}") is not bound to an existing patient: ${subject} is not found` };
      if (!patient.resource.identifier?.some((i) => i.value === patientId)) {
        return { reject: `Patient mismatch: the message names patient "${patientId}", but device "${deviceId}" is bound to ${subject}, which has no such identifier` };
      }
      sources.set(subject, patient.version);
    }
    return { identity: { device: { reference: `Device/${ids[0]}` }, subject: { reference: subject } as Reference<Patient> }, sources };
  }

  async #create(w: Writer, deviceId: string, patientId: string | undefined): Promise<Resolution> {
    if (!patientId) return { reject: `Mapping creates identities but the message has no patient id for device "${deviceId}"` };
    await lockCriteria(w.sql, 'Device', `identifier=${DEVICE_SYSTEM}|${deviceId}`);
    const patient = await this.#patient(w, patientId);
    const resolved = (device: Resource, version: string): Resolution => ({
      identity: { device: { reference: `Device/${device.id}` }, subject: { reference: patient.reference } },
      sources: new Map([[`Device/${device.id}`, version], [patient.reference, patient.version]]),
    });
    const ids = await matchIds(w.sql, 'Device', `identifier=${escapeToken(deviceId)}`, w.baseUrl);
    if (ids.length > 1) return { reject: `Device id "${deviceId}" is the identifier of several Devices` };
    if (ids.length === 1) {
      const stored = await w.read('Device', ids[0]);
      const device = JSON.parse(stored.content as string) as Device;
      if (device.patient?.reference && device.patient.reference !== patient.reference) {
        return { reject: `Device "${deviceId}" is bound to ${device.patient.reference}, not to patient "${patientId}"; re-binding needs an explicit Device update` };
      }
      if (device.patient?.reference) return resolved(device, stored.versionId);
      const bound = await w.update({ ...device, patient: { reference: patient.reference } });
      return resolved(bound.resource, bound.resource.meta?.versionId as string);
    }
    const created = await w.create({
      resourceType: 'Device',
      status: 'active',
      identifier: [{ system: DEVICE_SYSTEM, value: deviceId }],
      patient: { reference: patient.reference },
    } as Device);
    return resolved(created.resource, created.resource.meta?.versionId as string);
  }

  async #patient(w: Writer, patientId: string): Promise<{ reference: string; version: string }> {
    const criteria = `identifier=${PATIENT_SYSTEM}|${escapeToken(patientId)}`;
    await lockCriteria(w.sql, 'Patient', criteria);
    const ids = await matchIds(w.sql, 'Patient', criteria, w.baseUrl);
    if (ids.length > 0) return { reference: `Patient/${ids[0]}`, version: (await w.read('Patient', ids[0])).versionId };
    const created = await w.create({ resourceType: 'Patient', identifier: [{ system: PATIENT_SYSTEM, value: patientId }] } as Patient);
    return { reference: `Patient/${created.resource.id}`, version: created.resource.meta?.versionId as string };
  }

  /**
   * The Encounter whose identifier (any system, like device ids and as MedTech looks it up) is the
   * message's encounter id. It must be the patient's: readings filed under another patient's
   * encounter would surface in that patient's episode of care.
   */
  async #encounter(identity: Resolved, sources: Sources, encounterId: string): Promise<Resolution> {
    const ids = await matchIds(this.#repo.db, 'Encounter', `identifier=${escapeToken(encounterId)}`, this.#repo.baseUrl);
    if (ids.length > 1) return { reject: `Encounter id "${encounterId}" is the identifier of several Encounters` };
    const reference = `Encounter/${ids[0]}`;
    const encounter = ids.length === 1 ? await this.#read<Encounter>(reference) : undefined;
    if (!encounter) return { reject: `Unknown encounter "${encounterId}": no Encounter has it as an identifier` };
    const subject = identity.subject.reference;
    if (encounter.resource.subject?.reference !== subject) {
      return { reject: `Encounter mismatch: ${reference} ("${encounterId}") is of ${encounter.resource.subject?.reference ?? 'no patient'}, not of ${subject}, the device's patient` };
    }
    if (encounter.resource.status === 'entered-in-error') return { reject: `Unknown encounter "${encounterId}": ${reference} is entered-in-error` };
    return { identity: { ...identity, encounter: { reference } }, sources: new Map([...sources, [reference, encounter.version]]) };
  }

  /** The current version of `Type/id`; undefined when it does not exist or is deleted. */
  async #read<T extends Resource>(reference: string): Promise<{ resource: T; version: string } | undefined> {
    const [type, id, ...rest] = reference.split('/');
    if (rest.length > 0 || !id) return undefined;
    try {
      const stored = await this.#repo.readVersion(type, id);
      return { resource: JSON.parse(stored.content as string) as T, version: stored.versionId };
    } catch (err) {
      if (err instanceof FhirError) return undefined;
      throw err;
    }
  }
}

const cacheKey = (mode: IdentityResolution, { deviceId, patientId, encounterId }: IdentityGroup): string => JSON.stringify([mode, deviceId, patientId, encounterId]);

/** Search values treat `,` `|` `$` and `\` specially. */
const escapeToken = (s: string): string => encodeURIComponent(s.replace(/[\\,|$]/g, (c) => `\\${c}`));
