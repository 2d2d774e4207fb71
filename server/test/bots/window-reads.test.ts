import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Observation } from '@medplum/fhirtypes';
import { storeClient } from '../../src/bots.ts';
import { DRIVERS, useServer } from '../support.ts';

const LOINC = 'http://loinc.org';
// One clock for the whole test, so the two readings made at the same minute tie exactly.
const now = Date.now();
const reading = (patient: string, code: string, minutesAgo: number, value: number): Observation => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: LOINC, code }] },
  subject: { reference: `Patient/${patient}` },
  effectiveDateTime: new Date(now - minutesAgo * 60_000).toISOString(),
  valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});

for (const driver of DRIVERS) {
  describe(`bots' window reads ($lastn) made together (${driver})`, () => {
    const server = useServer(driver, { VIGIL_ROLE: 'api' });

    it('share one statement per shape, each answered as its own $lastn would be', async () => {
      const { repo } = server.vigil;
      for (const [patient, code, minutesAgo, value] of [
        ['w1', '8867-4', 50, 60], ['w1', '8867-4', 5, 61], ['w1', '9279-1', 20, 14], ['w1', '9279-1', 90, 15],
        ['w2', '8867-4', 30, 70], ['w2', '8867-4', 30, 71], ['w2', '2708-6', 2, 97],
        ['w3', '9279-1', 1, 18],
      ] as const) await repo.create(reading(patient, code, minutesAgo, value));
      const window = (patient: string, codes: string[], fromMinutes: number, toMinutes: number, max = 1) => ({
        subject: `Patient/${patient}`,
        code: codes.map((c) => `${LOINC}|${c}`).join(','),
        date: [`ge${new Date(now - fromMinutes * 60_000).toISOString()}`, `le${new Date(now - toMinutes * 60_000).toISOString()}`],
        'status:not': 'entered-in-error',
        max: String(max),
      });
      const vitals = ['8867-4', '9279-1', '2708-6'];
      const requests = [
        window('w1', vitals, 60, 0),
        window('w1', vitals, 60, 10),
        window('w2', vitals, 60, 0),
        window('w3', vitals, 60, 0),
        window('nobody', vitals, 60, 0),
        window('w2', vitals, 60, 0, 3), // another max
        window('w1', ['8867-4'], 120, 0), // other codes
      ];
      let statements = 0;
      const query = repo.db.query.bind(repo.db);
      repo.db.query = (...args: Parameters<typeof query>) => {
        if (args[0].includes('WITH RECURSIVE codes')) statements++;
        return query(...args);
      };
      try {
        const batched = storeClient(repo);
        const together = await Promise.all(requests.map((params) => batched.lastn(params)));
        assert.equal(statements, 3, 'one statement per shape: the same codes and max, another max, other codes');
        const single = storeClient(repo, () => undefined);
        const alone = [];
        for (const params of requests) alone.push(await single.lastn(params));
        const values = (found: Observation[][]) => found.map((list) => list.map((o) => o.valueQuantity?.value).sort());
        assert.deepEqual(values(together), values(alone));
        // w2's two heart rates share their time: the newest one is both of them (ties are kept).
        assert.deepEqual(values(together), [[14, 61], [14, 60], [70, 71, 97], [18], [], [70, 71, 97], [61]]);
      } finally {
        repo.db.query = query;
      }
    });
  });
}
