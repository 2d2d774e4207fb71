import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flag } from '@medplum/fhirtypes';
import { storeClient } from '../../src/bots.ts';
import { DRIVERS, useServer } from '../support.ts';

const KEY = 'urn:vigil:test-key';
const flag = (...values: string[]): Flag => ({
  resourceType: 'Flag',
  status: 'active',
  code: { text: 'keyed' },
  subject: { reference: 'Patient/p' },
  identifier: values.map((value) => ({ system: KEY, value })),
});

for (const driver of DRIVERS) {
  describe(`bots' keyed lookups (${driver})`, () => {
    const server = useServer(driver, { VIGIL_ROLE: 'api' });

    /**
     * The bots' client, counting the searches of Flags it sends (other parts of the server write in
     * the background); and the same store unbatched (any restriction turns batching off).
     */
    const clients = () => {
      const { repo } = server.vigil;
      let statements = 0;
      const query = repo.db.query.bind(repo.db);
      repo.db.query = (...args: Parameters<typeof query>) => {
        if (args[0].includes('FROM "Flag"')) statements++;
        return query(...args);
      };
      return { batched: storeClient(repo), single: storeClient(repo, () => undefined), statements: () => statements, restore: () => void (repo.db.query = query) };
    };

    it('answers lookups made together with one query, each as its own search would', async () => {
      const { repo } = server.vigil;
      for (const values of [['a'], ['a'], ['b', 'c'], ['c'], ['x,y'], ['d']]) await repo.create(flag(...values));
      const lookups = [
        { identifier: `${KEY}|a`, _count: '10' },
        { identifier: `${KEY}|a`, _count: '1' },
        { identifier: `${KEY}|b,${KEY}|c`, _count: '10' },
        { identifier: `${KEY}|x\\,y`, _count: '5' },
        { identifier: `${KEY}|none`, _count: '5' },
        { identifier: `other|d`, _count: '5' },
      ];
      const { batched, single, statements, restore } = clients();
      try {
        const together = await Promise.all(lookups.map((params) => batched.search<Flag>('Flag', params)));
        assert.equal(statements(), 1);
        const alone = [];
        for (const params of lookups) alone.push(await single.search<Flag>('Flag', params));
        const ids = (found: Flag[][]) => found.map((list) => list.map((f) => f.id));
        assert.deepEqual(ids(together), ids(alone));
        assert.deepEqual(together.map((list) => list.length), [2, 1, 2, 1, 0, 0]);
      } finally {
        restore();
      }
    });

    it('runs each lookup on its own when the shared one would be cut short', async () => {
      const { repo } = server.vigil;
      for (let i = 0; i < 3; i++) {
        await repo.create(flag('many-1'));
        await repo.create(flag('many-2'));
      }
      const lookups = [{ identifier: `${KEY}|many-1`, _count: '1' }, { identifier: `${KEY}|many-2`, _count: '2' }];
      const { batched, single, statements, restore } = clients();
      try {
        const together = await Promise.all(lookups.map((params) => batched.search<Flag>('Flag', params)));
        assert.equal(statements(), 3);
        for (const [i, params] of lookups.entries()) assert.deepEqual(together[i].map((f) => f.id), (await single.search<Flag>('Flag', params)).map((f) => f.id));
        assert.deepEqual(together.map((list) => list.length), [1, 2]);
      } finally {
        restore();
      }
    });
  });
}
