import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Observation } from '@medplum/fhirtypes';
import { loadConfig } from '../../src/config.ts';
import { getResourceTypeList, loadDefinitions } from '../../src/definitions.ts';
import { startVigil } from '../../src/main.ts';
import { insertRows, rowJson } from '../../src/store/insert-batcher.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { bootstrapEnv, bootstrapToken, freshPostgresDatabase, request } from '../support.ts';

describe('schema migrations', () => {
  it('serialises concurrent starts on PostgreSQL: each version applied once, nothing corrupted', async () => {
    loadDefinitions();
    const { url, drop } = await freshPostgresDatabase({ empty: true });
    const replicas = await Promise.all([openPostgres(url, 2), openPostgres(url, 2), openPostgres(url, 2)]);
    try {
      const applied = await Promise.all(replicas.map((db) => migrate(db)));
      const all = Math.max(...applied.map((a) => a.length));
      assert.deepEqual(applied.map((a) => a.length).sort(), [0, 0, all]);
      const rows = await replicas[0].query<{ version: number }>('SELECT version FROM vigil_migrations ORDER BY version');
      assert.deepEqual(rows.map((r) => r.version), Array.from({ length: all }, (_, i) => i + 1));
      assert.deepEqual(await migrate(replicas[1]), [], 'idempotent');
      const tables = await replicas[0].query<{ n: number }>(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('Observation', 'Observation_History')`);
      assert.equal(tables[0].n, 2);
      // a resource row (~2 KB of JSON and search columns) is neither compressed nor moved out of line
      const toasted = await replicas[0].query<{ relname: string }>(
        `SELECT relname FROM pg_class WHERE relname = ANY($1) AND NOT coalesce('toast_tuple_target=8160' = ANY(reloptions), false)`,
        [getResourceTypeList()],
      );
      assert.deepEqual(toasted, []);
      // a single-column B-tree that a hot-path index leads with is not made, and goes from databases that had it
      const single = ['Observation_patient_idx', 'Observation_subject_idx', 'Observation_device_idx'];
      const indexes = async () => (await replicas[0].query<{ indexname: string }>('SELECT indexname FROM pg_indexes WHERE indexname = ANY($1) OR indexname = $2 ORDER BY 1', [single, 'Observation_patient_date_start_idx'])).map((r) => r.indexname);
      assert.deepEqual(await indexes(), ['Observation_patient_date_start_idx']);
      await replicas[0].query('CREATE INDEX "Observation_patient_idx" ON "Observation" (patient) WHERE patient IS NOT NULL');
      await replicas[0].query('DELETE FROM vigil_migrations WHERE version = 11');
      assert.deepEqual(await migrate(replicas[1]), [11]);
      assert.deepEqual(await indexes(), ['Observation_patient_date_start_idx']);
      // rows stored before date_ranges get theirs: a Timing's events, each searched on its own
      const timed = { resourceType: 'Observation', id: 'timed', meta: { versionId: '1', lastUpdated: '2024-03-01T00:00:00Z' }, status: 'final', code: { text: 'x' },
        effectiveTiming: { event: ['2024-03-15T09:00:00Z', '2024-03-22T09:00:00Z'] } } as Observation;
      await insertRows(replicas[0], 'Observation', [rowJson(timed, JSON.stringify(timed), '')]);
      await replicas[0].query('UPDATE "Observation" SET date_ranges = NULL');
      await replicas[0].query('DELETE FROM vigil_migrations WHERE version = 12');
      assert.deepEqual(await migrate(replicas[1]), [12]);
      const [row] = await replicas[0].query<{ date_ranges: unknown }>(`SELECT date_ranges FROM "Observation" WHERE id = 'timed'`);
      assert.deepEqual(row.date_ranges, { date: [{ s: '2024-03-15T09:00:00.000Z', e: '2024-03-15T09:00:01.000Z' }, { s: '2024-03-22T09:00:00.000Z', e: '2024-03-22T09:00:01.000Z' }] });
    } finally {
      await Promise.all(replicas.map((db) => db.close()));
      await drop();
    }
  });

  it('keeps embedded (PGlite) data across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigil-pglite-'));
    const env = { PORT: '0', LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', VIGIL_DATA_DIR: dir, ...bootstrapEnv() };
    try {
      let vigil = await startVigil(loadConfig(env));
      await bootstrapToken(vigil);
      const created = await request('POST', `${vigil.config.baseUrl}/fhir/R4/Patient`, { resourceType: 'Patient', gender: 'female' });
      assert.equal(created.status, 201);
      await vigil.stop();
      vigil = await startVigil(loadConfig(env));
      await bootstrapToken(vigil); // a new port is a new issuer, so a new token
      const read = await request('GET', `${vigil.config.baseUrl}/fhir/R4/Patient/${created.body.id}`);
      assert.equal(read.status, 200);
      assert.equal(read.body.gender, 'female');
      await vigil.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
