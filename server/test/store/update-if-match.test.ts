import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flag } from '@medplum/fhirtypes';
import { DRIVERS, useServer } from '../support.ts';

const flag = (text: string): Flag => ({ resourceType: 'Flag', status: 'active', code: { text }, subject: { reference: 'Patient/p' } });

for (const driver of DRIVERS) {
  describe(`update with If-Match, the one-statement path (${driver})`, () => {
    const server = useServer(driver, { VIGIL_ROLE: 'api' });
    const versions = async (id: string) =>
      (await server.vigil.repo.db.query<{ version_id: number }>('SELECT version_id FROM "Flag_History" WHERE id = $1 ORDER BY version_id', [id])).map((r) => r.version_id);
    const status = (promise: Promise<unknown>) => promise.then(() => 200, (err: { status?: number }) => err.status);

    it('replaces the named version, keeps its history and reports the change', async () => {
      const { repo } = server.vigil;
      const created = (await repo.create(flag('first'))).resource as Flag;
      const updated = (await repo.update({ ...created, code: { text: 'second' } }, { ifMatch: '1' })).resource as Flag;
      assert.equal(updated.meta?.versionId, '2');
      assert.equal((await repo.read<Flag>('Flag', created.id as string)).code?.text, 'second');
      assert.deepEqual(await versions(created.id as string), [1, 2]);
      // role api drains no outbox: the change waits there for a worker
      const outbox = await repo.db.query<{ interaction: string }>('SELECT interaction FROM change_outbox WHERE id = $1 AND version_id = 2', [created.id]);
      assert.deepEqual(outbox.map((r) => r.interaction), ['update']);
    });

    it('refuses a stale, unknown, malformed or deleted version with 412 and writes nothing', async () => {
      const { repo } = server.vigil;
      const created = (await repo.create(flag('v1'))).resource as Flag;
      const id = created.id as string;
      await repo.update({ ...created, code: { text: 'v2' } }, { ifMatch: '1' });
      for (const ifMatch of ['1', '3', 'abc', '0', '']) assert.equal(await status(repo.update({ ...created, code: { text: 'stale' } }, { ifMatch })), 412, ifMatch);
      assert.equal(await status(repo.update({ ...created, id: 'no-such-flag', code: { text: 'x' } }, { ifMatch: '1' })), 412);
      assert.deepEqual(await versions(id), [1, 2]);
      assert.equal((await repo.read<Flag>('Flag', id)).code?.text, 'v2');
      await repo.delete('Flag', id);
      assert.equal(await status(repo.update({ ...created, code: { text: 'revived' } }, { ifMatch: '3' })), 412);
      assert.deepEqual(await versions(id), [1, 2, 3]);
    });

    it('lets exactly one of concurrent updates of the same version win', async () => {
      const { repo } = server.vigil;
      const created = (await repo.create(flag('contended'))).resource as Flag;
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => status(repo.update({ ...created, code: { text: `writer ${i}` } }, { ifMatch: '1' }))));
      assert.deepEqual(results.toSorted(), [200, 412, 412, 412, 412, 412]);
      assert.deepEqual(await versions(created.id as string), [1, 2]);
    });

    it('refuses an invalid resource with 400 before writing', async () => {
      const { repo } = server.vigil;
      const created = (await repo.create(flag('valid'))).resource as Flag;
      const invalid = { ...created, status: 'sideways' } as unknown as Flag;
      assert.equal(await status(repo.update(invalid, { ifMatch: '1' })), 400);
      assert.deepEqual(await versions(created.id as string), [1]);
    });
  });
}
