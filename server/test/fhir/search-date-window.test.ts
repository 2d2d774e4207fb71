import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Observation } from '@medplum/fhirtypes';
import { storeClient } from '../../src/bots.ts';
import type { QueryOptions } from '../../src/store/database.ts';
import type { Repository } from '../../src/store/repository.ts';
import { DRIVERS, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
const now = Date.now();
const ago = (hours: number): string => new Date(now - hours * 3_600_000).toISOString();
const observation = (patient: string, code: string, effective: Pick<Observation, 'effectiveDateTime' | 'effectivePeriod'>): Observation => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: LOINC, code }] },
  subject: { reference: `Patient/${patient}` },
  ...effective,
  valueQuantity: { value: 70, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});
const instant = (patient: string, code: string, hoursAgo: number) => observation(patient, code, { effectiveDateTime: ago(hoursAgo) });

/**
 * Date windows ("ended after X") seek the start index from X minus the longest range the parameter
 * has held. These check that every write path raises that span, so that a long range is never cut
 * off, and that a window, or `$lastn`'s newest rows, are read without the patient's history.
 */
for (const driver of DRIVERS) {
  describe(`date windows on the start index (${driver})`, () => {
    const server = useServer(driver, { VIGIL_ROLE: 'api' });
    const ids = async (patient: string, date: string | string[], extra: Record<string, string> = {}) => {
      const found = await storeClient(server.vigil.repo).search<Observation>('Observation', { subject: `Patient/${patient}`, date, _count: '100', ...extra });
      return found.map((o) => o.id).sort();
    };

    it('reads only the window, however long the history', async () => {
      const { repo } = server.vigil;
      for (let h = 1; h <= 150; h++) await repo.create(instant('history', '2708-6', h));
      await repo.db.query('ANALYZE "Observation"'); // as autovacuum would have
      const { plans, customPlans } = await explained(repo, async () => {
        const client = storeClient(repo);
        await client.search('Observation', { subject: 'Patient/history', code: `${LOINC}|2708-6`, date: `ge${ago(3.5)}`, _sort: '-date', _count: '50' });
        await client.lastn({ subject: 'Patient/history', code: `${LOINC}|2708-6`, date: `ge${ago(3.5)}`, max: '10' });
      });
      assert.equal(plans.length, 2);
      // the search is planned for its window: a generic plan reads the whole window and sorts it
      assert.deepEqual(customPlans, [true, undefined]);
      for (const plan of plans) {
        // three readings in the window, 147 before it: what the scans fetch and throw away stays small
        const read = rowsRead(plan);
        assert.ok(read <= 10, `read ${read} rows: ${JSON.stringify(plan)}`);
      }
    });

    it('$lastn of named codes looks for no text-only Observations', async () => {
      const { repo } = server.vigil;
      // a wearable's pulse every minute, and three SpO2 readings, all within the window
      for (let m = 1; m <= 100; m++) await repo.create(instant('busy', '8867-4', m / 60));
      for (let h = 1; h <= 3; h++) await repo.create(instant('busy', '2708-6', h / 2));
      await repo.db.query('ANALYZE "Observation"');
      const params = { subject: 'Patient/busy', code: `${LOINC}|2708-6`, date: `ge${ago(3)}`, max: '5' };
      assert.equal((await storeClient(repo).lastn(params)).length, 3);
      // none can match a named code, but the planner cannot know that, and with a bench's statistics
      // it looked for them by reading the patient's whole window (230 rows a patient for none)
      const { plans } = await explained(repo, () => storeClient(repo).lastn(params));
      assert.equal(plans.length, 1);
      assert.doesNotMatch(JSON.stringify(plans[0]), /code IS NULL/);
      const read = rowsRead(plans[0]);
      assert.ok(read <= 10, `read ${read} rows: ${JSON.stringify(plans[0])}`);
    });

    it('$lastn reads a code\'s newest rows, however the planner prices reading its whole history', async () => {
      const { repo } = server.vigil;
      // 20,000 readings of 5 codes, half of them one patient's, in random order on disk
      await repo.db.query(
        `INSERT INTO "Observation" (id, version_id, last_updated, content, patient, subject, code, date_start, date_end)
         SELECT 'disk-' || g, 1, now(), '{"pad":"' || array_to_string(ARRAY(SELECT gen_random_uuid()::text FROM generate_series(1, 40) k WHERE g > 0), '') || '"}',
           p, p, ARRAY['${LOINC}|' || c, c, '${LOINC}|'], t, t + interval '1 ms'
         FROM generate_series(1, 20000) g,
           LATERAL (SELECT CASE WHEN g % 2 = 0 THEN 'Patient/disk' ELSE 'Patient/disk-' || g % 100 END AS p, now() - g * interval '1 minute' AS t, (8860 + g % 5)::text AS c) x
         ORDER BY random()`,
      );
      await repo.db.query('ANALYZE "Observation"');
      // with random reads priced as on network storage, a plan for a code's whole history scans the
      // table and sorts it; the per-code scan must be planned for the few rows it reads
      const { plans } = await explained(repo, () => storeClient(repo).lastn({ patient: 'Patient/disk', max: '3' }), 'SET LOCAL random_page_cost = 20');
      assert.equal(plans.length, 1);
      const read = rowsRead(plans[0]);
      assert.ok(read <= 50, `read ${read} rows: ${JSON.stringify(plans[0])}`);
    });

    it('$lastn finds a long range that is the newest in its window', async () => {
      const { repo } = server.vigil;
      for (let h = 10; h <= 30; h++) await repo.create(instant('lastn', '9279-1', h));
      const long = await repo.create(observation('lastn', '9279-1', { effectivePeriod: { start: ago(48), end: ago(0.5) } }));
      const found = await storeClient(server.vigil.repo).lastn({ subject: 'Patient/lastn', code: `${LOINC}|9279-1`, date: `ge${ago(2)}`, max: '3' });
      assert.deepEqual(found.map((o) => o.id), [long.resource.id]);
    });

    // last: an open-ended range leaves no span to seek by (windows then read as they would without one)
    it('finds ranges longer than any before them, however they were written', async () => {
      const { repo } = server.vigil;
      for (let h = 1; h <= 5; h++) await repo.create(instant('span', '8867-4', h));
      const ends = async (id: string | undefined, name: string) => {
        for (const date of [`ge${ago(2)}`, `gt${ago(2)}`, `ap${ago(1.9)}`]) assert.ok((await ids('span', date)).includes(id as string), `${name} ends within ${date}`);
      };
      // a create, a batch (transaction) and an update, each the longest range written so far
      const created = await repo.create(observation('span', '8867-4', { effectivePeriod: { start: ago(72), end: ago(1.5) } }));
      await ends(created.resource.id, 'a created range');
      const [batched] = await repo.transaction((w) => w.createMany([{ resource: observation('span', '8867-4', { effectivePeriod: { start: ago(24 * 30), end: ago(1.6) } }), id: 'span-batched' }]));
      await ends(batched.resource.id, 'a range created in a batch');
      const updated = await repo.create(instant('span', '8867-4', 400));
      await repo.update({ ...updated.resource, effectiveDateTime: undefined, effectivePeriod: { start: ago(24 * 365), end: ago(1.7) } } as Observation);
      await ends(updated.resource.id, 'an updated range');
      const open = await repo.create(observation('span', '8867-4', { effectivePeriod: { start: ago(24 * 3650) } }));
      await ends(open.resource.id, 'an open-ended range');
      const long = [created.resource.id, batched.resource.id, updated.resource.id, open.resource.id];
      assert.equal((await ids('span', `ge${ago(2)}`)).length, 6, 'the readings of 1 and 2 hours ago and the four long ranges');
      assert.equal((await ids('span', `gt${ago(2)}`)).length, 5, 'all but the reading of exactly 2 hours ago');
      // the other side needs no span: a range that started by X (le) or ended by X (eb) started before X
      const started = await ids('span', `le${ago(3)}`);
      assert.equal(started.length, 7, 'the readings of 3, 4 and 5 hours ago and the four long ranges');
      for (const id of long) assert.ok(started.includes(id as string));
      assert.equal((await ids('span', `eb${ago(3)}`)).length, 2, 'the readings of 4 and 5 hours ago');
    });
  });
}

/** Every statement on Observation that `run` makes is explained (analysed) instead of answered, after `setting` if given. */
async function explained(repo: Repository, run: () => Promise<unknown>, setting?: string): Promise<{ plans: unknown[]; customPlans: (boolean | undefined)[] }> {
  const plans: unknown[] = [];
  const customPlans: (boolean | undefined)[] = [];
  const query = repo.db.query.bind(repo.db);
  repo.db.query = (async (text: string, values?: unknown[], options?: QueryOptions) => {
    if (!text.includes(`FROM "Observation"`)) return query(text, values, options);
    const explain = `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`;
    const [row] = setting
      ? await repo.db.transaction(async (tx) => (await tx.query(setting), tx.query<{ 'QUERY PLAN': unknown }>(explain, values)))
      : await query<{ 'QUERY PLAN': unknown }>(explain, values);
    plans.push(row['QUERY PLAN']);
    customPlans.push(options?.customPlan);
    return [];
  }) as typeof repo.db.query;
  try {
    await run();
  } finally {
    repo.db.query = query;
  }
  return { plans, customPlans };
}

/** The rows the plan's scans of Observation produced or filtered out. */
function rowsRead(node: unknown): number {
  if (Array.isArray(node)) return node.reduce((n: number, child) => n + rowsRead(child), 0);
  if (!node || typeof node !== 'object') return 0;
  const n = node as Record<string, unknown>;
  const own = n['Relation Name'] === 'Observation'
    ? Number(n['Actual Rows'] ?? 0) * Number(n['Actual Loops'] ?? 1) + Number(n['Rows Removed by Filter'] ?? 0) + Number(n['Rows Removed by Index Recheck'] ?? 0)
    : 0;
  return own + rowsRead(n.Plan) + rowsRead(n.Plans);
}
