import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Flag } from '@medplum/fhirtypes';
import { createQueueFactory } from '../../src/jobs/queue.ts';
import { ChangeFeed } from '../../src/store/events.ts';
import type { Repository } from '../../src/store/repository.ts';
import { type ChangeBatch, OutboxDrainer } from '../../src/subscriptions/outbox.ts';
import { DRIVERS, useServer } from '../support.ts';
import { waitFor } from './helpers.ts';

const flag = (text: string): Flag => ({ resourceType: 'Flag', status: 'active', code: { text }, subject: { reference: 'Patient/p' } });

for (const driver of DRIVERS) {
  describe(`outbox drain (${driver})`, () => {
    // role api drains nothing itself: the test's drainer is the only one
    const server = useServer(driver, { VIGIL_ROLE: 'api' });

    it('holds back while a grouped consumer has a batch waiting, then takes what gathered as one batch', async () => {
      const { repo } = server.vigil;
      const queues = createQueueFactory();
      const changes = queues.queue<ChangeBatch>('changes');
      const batches: string[][] = [];
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      changes.process(async ({ data }) => {
        batches.push(data.changes.map((c) => c.id));
        if (batches.length === 1) await released;
      });
      // in-process queues' rows stay, taken, until their batch has run
      const outbox = async () => (await repo.db.query<{ n: number }>('SELECT count(*)::int AS n FROM change_outbox WHERE NOT taken'))[0].n;
      const errors: Error[] = [];
      const drainer = new OutboxDrainer(repo.db, new ChangeFeed(), [{ queue: changes, groupKey: 'c' }], { pollMs: 60_000, holdMs: 3_000, onError: (err) => errors.push(err) });
      try {
        const write = async (text: string) => {
          const id = (await repo.create(flag(text))).resource.id as string;
          drainer.wake();
          return id;
        };
        const first = await write('first');
        await waitFor('the first batch running', () => batches.length === 1);
        const second = await write('second');
        await waitFor('the second batch queued behind it', async () => (await changes.groupSize('c')) === 2);
        const later = [];
        for (let i = 0; i < 5; i++) later.push(await write(`later ${i}`));
        await sleep(500);
        assert.equal(await outbox(), 5, 'nothing drained while a batch waits');
        // a consumer that never finishes holds the drain back for holdMs at most
        await waitFor('the drain after its hold', async () => (await outbox()) === 0, 10_000);
        assert.equal(await changes.groupSize('c'), 3);
        release();
        await waitFor('every batch run', () => batches.length === 3);
        assert.deepEqual(batches, [[first], [second], later]);
        await waitFor('the rows released once run', async () => (await rows(repo)) === 0);
        assert.deepEqual(errors, []);
      } finally {
        release();
        await drainer.stop();
        await queues.close();
      }
    });

    it('with in-process queues, a change taken but not yet run survives the process and is drained again', async () => {
      const { repo } = server.vigil;
      const errors: Error[] = [];
      const onError = (err: Error) => errors.push(err);
      // the first process takes the batch into a queue that never runs it, then dies
      const dying = createQueueFactory();
      const drainer = new OutboxDrainer(repo.db, new ChangeFeed(), [{ queue: dying.queue<ChangeBatch>('changes'), groupKey: 'c' }], { pollMs: 60_000, onError });
      const id = (await repo.create(flag('survivor'))).resource.id as string;
      drainer.wake();
      await waitFor('the change taken', async () => (await repo.db.query<{ n: number }>('SELECT count(*)::int AS n FROM change_outbox WHERE taken'))[0].n === 1);
      await drainer.stop();
      await dying.close({ timeoutMs: 0 });
      assert.equal(await rows(repo), 1, 'still in the outbox');

      const queues = createQueueFactory();
      const batches: string[][] = [];
      const changes = queues.queue<ChangeBatch>('changes');
      changes.process(async ({ data }) => void batches.push(data.changes.map((c) => c.id)));
      const next = new OutboxDrainer(repo.db, new ChangeFeed(), [{ queue: changes, groupKey: 'c' }], { pollMs: 60_000, onError });
      try {
        next.wake();
        await waitFor('the change run by the next process', () => batches.length === 1);
        assert.deepEqual(batches, [[id]]);
        await waitFor('its row released', async () => (await rows(repo)) === 0);
        assert.deepEqual(errors, []);
      } finally {
        await next.stop();
        await queues.close();
      }
    });
  });
}

async function rows(repo: Repository): Promise<number> {
  return (await repo.db.query<{ n: number }>('SELECT count(*)::int AS n FROM change_outbox'))[0].n;
}
