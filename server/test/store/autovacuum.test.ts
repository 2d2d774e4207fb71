import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Observation } from '@medplum/fhirtypes';
import { autovacuum, startAutovacuum } from '../../src/store/autovacuum.ts';
import type { Database } from '../../src/store/database.ts';
import { openPGlite } from '../../src/store/pglite.ts';
import { useServer } from '../support.ts';

const stats = async (db: Database, table: string) =>
  (await db.query<{ tuples: number; dead: number; analyzed: boolean }>(
    `SELECT c.reltuples AS tuples, s.n_dead_tup AS dead, s.last_analyze IS NOT NULL AS analyzed
       FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = $1`,
    [table],
  ))[0];

describe('autovacuum for the embedded engine', () => {
  let db: Database;
  before(async () => {
    db = await openPGlite('memory://');
    await db.query('CREATE TABLE reading (id int PRIMARY KEY, value int)');
    await db.query('CREATE TABLE quiet (id int PRIMARY KEY)');
  });
  after(() => db.close());

  it('analyses a table once it has changed by more than autovacuum would wait for, and vacuums its dead rows', async () => {
    await db.query('INSERT INTO reading SELECT g, g FROM generate_series(1, 40) g');
    await db.query('INSERT INTO quiet VALUES (1)');
    // 40 changed rows: below the 50 + 10% that autovacuum waits for
    assert.deepEqual(await autovacuum(db), { vacuumed: [], analyzed: [] });

    await db.query('INSERT INTO reading SELECT g, g FROM generate_series(41, 2000) g');
    assert.deepEqual(await autovacuum(db), { vacuumed: ['reading'], analyzed: ['reading'] });
    const analysed = await stats(db, 'reading');
    assert.equal(analysed.tuples, 2000); // the planner now knows the table's size
    assert.equal(analysed.analyzed, true);
    assert.deepEqual(await autovacuum(db), { vacuumed: [], analyzed: [] }, 'nothing changed since');

    await db.query('UPDATE reading SET value = value + 1 WHERE id <= 500');
    assert.deepEqual(await autovacuum(db), { vacuumed: ['reading'], analyzed: ['reading'] });
    assert.equal((await stats(db, 'reading')).dead, 0, 'the old row versions are reclaimed');
    assert.deepEqual(await autovacuum(db), { vacuumed: [], analyzed: [] });
  });

  it('runs rounds on a timer until stopped', async () => {
    const errors: unknown[] = [];
    const stop = startAutovacuum(db, (err) => errors.push(err), 20);
    await db.query('INSERT INTO quiet SELECT g FROM generate_series(2, 500) g');
    const deadline = Date.now() + 10_000;
    while (!(await stats(db, 'quiet')).analyzed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await stop();
    assert.equal((await stats(db, 'quiet')).tuples, 500);
    assert.deepEqual(errors, []);
  });
});

describe('autovacuum in an embedded Vigil', () => {
  const server = useServer('pglite', { VIGIL_ROLE: 'api' });

  it('covers the resource tables and their history', async () => {
    const { repo } = server.vigil;
    for (let i = 0; i < 120; i++) {
      await repo.create({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: 'Patient/autovacuum' },
        effectiveDateTime: new Date(Date.now() - i * 60_000).toISOString(),
        valueQuantity: { value: 60 + (i % 20), unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      } satisfies Observation);
    }
    const { analyzed } = await autovacuum(repo.db);
    assert.ok(analyzed.includes('Observation') && analyzed.includes('Observation_History'), analyzed.join());
    assert.ok((await stats(repo.db, 'Observation')).tuples >= 120);
  });
});
