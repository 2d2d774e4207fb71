import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flag, Observation, Resource } from '@medplum/fhirtypes';
import type { FhirClient } from './manifest.ts';
import { scopedClient } from './scopes.ts';

/** A client that answers every call and notes which reached it. */
function everything(): FhirClient & { calls: string[] } {
  const calls: string[] = [];
  const answer = <T>(call: string, value: T): Promise<T> => (calls.push(call), Promise.resolve(value));
  return {
    calls,
    read: (type, id) => answer(`read ${type}`, { resourceType: type, id } as never),
    vread: (type, id) => answer(`vread ${type}`, { resourceType: type, id } as never),
    search: (type) => answer(`search ${type}`, []),
    async *searchPages(type) {
      calls.push(`searchPages ${type}`);
      yield [];
    },
    lastn: () => answer('lastn', []),
    create: (resource) => answer(`create ${resource.resourceType}`, resource),
    update: (resource) => answer(`update ${resource.resourceType}`, resource),
    createIfNoneExist: (resource) => answer(`createIfNoneExist ${resource.resourceType}`, { resource, created: true }),
  };
}

const flag: Flag = { resourceType: 'Flag', status: 'active', code: { text: 'alert' }, subject: { reference: 'Patient/p' } };
const observation: Observation = { resourceType: 'Observation', status: 'final', code: { text: 'reading' } };

async function refused(call: Promise<unknown>, what: RegExp): Promise<void> {
  await assert.rejects(call, (err: { status?: number; message?: string }) => err.status === 403 && what.test(err.message ?? ''));
}

describe('scopedClient', () => {
  it('passes what the scopes allow through', async () => {
    const fhir = everything();
    const client = scopedClient(fhir, { name: 'b', scopes: ['system/Observation.rs', 'system/Flag.cus'] });
    await client.read('Observation', '1');
    await client.vread('Observation', '1', '1');
    await client.search('Observation', {});
    for await (const page of client.searchPages('Observation', {})) assert.deepEqual(page, []);
    await client.lastn({ subject: 'Patient/p' });
    await client.search('Flag', {});
    await client.create(flag);
    await client.update({ ...flag, id: '1' });
    await client.createIfNoneExist(flag, 'identifier=x|1');
    assert.deepEqual(fhir.calls, ['read Observation', 'vread Observation', 'search Observation', 'searchPages Observation', 'lastn', 'search Flag', 'create Flag', 'update Flag', 'createIfNoneExist Flag']);
  });

  it('refuses with a 403 a type, or an interaction on it, the scopes do not name, before the server is asked', async () => {
    const fhir = everything();
    const client = scopedClient(fhir, { name: 'b', scopes: ['system/Observation.s', 'system/Flag.cu'] });
    await refused(client.read('Observation', '1'), /bot b may not read Observation/);
    await refused(client.vread('Observation', '1', '1'), /may not read Observation/);
    await refused(client.search('Patient', {}), /may not search Patient/);
    await refused((async () => { for await (const _ of client.searchPages('CareTeam', {})) void _; })(), /may not search CareTeam/);
    await refused(client.create(observation), /may not create Observation/);
    await refused(client.update({ ...observation, id: '1' }), /may not update Observation/);
    // a conditional create searches too
    await refused(client.createIfNoneExist(flag, 'identifier=x|1'), /may not search Flag/);
    await refused(client.create<Resource>({ resourceType: 'Communication', status: 'in-progress' }), /may not create Communication/);
    assert.deepEqual(fhir.calls, []);
    await refused(scopedClient(fhir, { name: 'none', scopes: [] }).lastn({ subject: 'Patient/p' }), /may not search Observation: its scopes are none/);
  });

  it('takes only system scopes without a query', () => {
    for (const scope of ['patient/Observation.rs', 'system/Observation.rs?category=vital-signs', 'system/observation.rs', 'Observation.read']) {
      assert.throws(() => scopedClient(everything(), { name: 'b', scopes: [scope] }), /is not a SMART system scope without a query/, scope);
    }
    assert.doesNotThrow(() => scopedClient(everything(), { name: 'b', scopes: ['system/*.rs', 'system/Flag.write'] }));
  });
});
