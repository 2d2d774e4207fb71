import type { Device, Patient, Reference } from '@medplum/fhirtypes';
import { lockCriteria, matchIds } from '../store/conditional.ts';
import type { ChangeFeed } from '../store/events.ts';
import type { Repository, Writer } from '../store/repository.ts';
import type { IdentityResolution } from './template/index.ts';

export const DEVICE_SYSTEM = 'urn:vigil:device-id';
export const PATIENT_SYSTEM = 'urn:vigil:patient-id';

export type Identity = { device: Reference<Device>; subject: Reference<Patient> } | { reject: string };

/** Another replica's Device change is seen within this time; our own at once (change feed). */
const CACHE_MS = 30_000;

/**
 * Which Device and Patient a device id stands for. `Lookup` needs a Device carrying the id as an
 * identifier and bound to a patient; `Create` makes both (idempotently, under an advisory lock)
 * and never re-binds a device that belongs to another patient.
 */
export class IdentityResolver {
  readonly #repo: Repository;
  readonly #cache = new Map<string, { identity: Identity; at: number }>();

  constructor(repo: Repository, feed: ChangeFeed) {
    this.#repo = repo;
    feed.subscribe((e) => {
      if (e.resourceType === 'Device') this.#cache.clear();
    });
  }

  async resolve(mode: IdentityResolution, deviceId: string, patientId?: string): Promise<Identity> {
    const key = `${mode}|${deviceId}|${patientId ?? ''}`;
    const hit = this.#cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.identity;
    const identity = mode === 'Lookup' ? await this.#lookup(deviceId) : await this.#repo.transaction((w) => this.#create(w, deviceId, patientId));
    // rejections are not cached: the device may be enrolled a moment later
    if (!('reject' in identity)) this.#cache.set(key, { identity, at: Date.now() });
    return identity;
  }

  async #lookup(deviceId: string): Promise<Identity> {
    const ids = await matchIds(this.#repo.db, 'Device', `identifier=${escapeToken(deviceId)}`, this.#repo.baseUrl);
    if (ids.length === 0) return { reject: `Unknown device "${deviceId}": no Device has it as an identifier` };
    if (ids.length > 1) return { reject: `Device id "${deviceId}" is the identifier of several Devices` };
    const device = await this.#repo.read<Device>('Device', ids[0]);
    if (!device.patient?.reference) return { reject: `Device/${ids[0]} ("${deviceId}") is not bound to a patient` };
    return { device: { reference: `Device/${ids[0]}` }, subject: { reference: device.patient.reference } as Reference<Patient> };
  }

  async #create(w: Writer, deviceId: string, patientId: string | undefined): Promise<Identity> {
    if (!patientId) return { reject: `Mapping creates identities but the message has no patient id for device "${deviceId}"` };
    await lockCriteria(w.sql, 'Device', `identifier=${DEVICE_SYSTEM}|${deviceId}`);
    const patientRef = await this.#patient(w, patientId);
    const ids = await matchIds(w.sql, 'Device', `identifier=${escapeToken(deviceId)}`, w.baseUrl);
    if (ids.length > 1) return { reject: `Device id "${deviceId}" is the identifier of several Devices` };
    if (ids.length === 1) {
      const device = JSON.parse((await w.read('Device', ids[0])).content as string) as Device;
      if (device.patient?.reference && device.patient.reference !== patientRef) {
        return { reject: `Device "${deviceId}" is bound to ${device.patient.reference}, not to patient "${patientId}"; re-binding needs an explicit Device update` };
      }
      if (!device.patient?.reference) await w.update({ ...device, patient: { reference: patientRef } });
      return { device: { reference: `Device/${ids[0]}` }, subject: { reference: patientRef } };
    }
    const created = await w.create({
      resourceType: 'Device',
      status: 'active',
      identifier: [{ system: DEVICE_SYSTEM, value: deviceId }],
      patient: { reference: patientRef },
    } as Device);
    return { device: { reference: `Device/${created.resource.id}` }, subject: { reference: patientRef } };
  }

  async #patient(w: Writer, patientId: string): Promise<string> {
    const criteria = `identifier=${PATIENT_SYSTEM}|${escapeToken(patientId)}`;
    await lockCriteria(w.sql, 'Patient', criteria);
    const ids = await matchIds(w.sql, 'Patient', criteria, w.baseUrl);
    if (ids.length > 0) return `Patient/${ids[0]}`;
    const created = await w.create({ resourceType: 'Patient', identifier: [{ system: PATIENT_SYSTEM, value: patientId }] } as Patient);
    return `Patient/${created.resource.id}`;
  }
}

/** Search values treat `,` `|` `$` and `\` specially. */
const escapeToken = (s: string): string => encodeURIComponent(s.replace(/[\\,|$]/g, (c) => `\\${c}`));
