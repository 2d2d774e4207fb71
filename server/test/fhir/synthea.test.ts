import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import { DRIVERS, currentAuth, request, useServer } from '../support.ts';
import { readSyntheaText, syntheaFiles } from '../synthea.ts';

/**
 * Synthea patients load through transactions, and searches over them count right: all 120 on
 * PostgreSQL; on PGlite (the single-process embedded engine, several times slower to write) the
 * shared bundles and the first 20 patients, which exercise the same paths.
 */
const PGLITE_PATIENTS = 20;

for (const driver of DRIVERS) {
  describe(`Synthea load (${driver})`, () => {
    const s = useServer(driver);
    // the two `0-*` batch bundles (practitioners, organisations) come first
    const files = driver === 'pglite' ? syntheaFiles().slice(0, 2 + PGLITE_PATIENTS) : syntheaFiles();

    it(`loads ${driver === 'pglite' ? `${PGLITE_PATIENTS} patients` : 'every bundle'} and answers searches consistent with the source data`, { timeout: 600_000 }, async () => {
      const checks: { patientId: string; family: string; counts: Map<string, number> }[] = [];
      let loaded = 0;
      for (const file of files) {
        const text = readSyntheaText(file);
        const res = await fetch(s.fhir, { method: 'POST', headers: { 'content-type': 'application/fhir+json', ...(await currentAuth()) }, body: text });
        const body = (await res.json()) as Bundle;
        assert.equal(res.status, 200, `${file}: ${JSON.stringify(body).slice(0, 500)}`);
        const failed = (body.entry ?? []).filter((e) => !/^20[01]/.test(e.response?.status ?? ''));
        assert.deepEqual(failed, [], file);
        loaded += body.entry?.length ?? 0;
        const source = JSON.parse(text) as Bundle;
        if (source.type === 'transaction' && checks.length < 8) {
          const patient = source.entry?.[0].resource as Patient;
          const counts = new Map<string, number>();
          for (const e of source.entry ?? []) counts.set(e.resource?.resourceType as string, (counts.get(e.resource?.resourceType as string) ?? 0) + 1);
          const location = body.entry?.[0].response?.location as string;
          checks.push({ patientId: location.split('/')[1], family: patient.name?.[0]?.family as string, counts });
        }
      }
      if (files.length === syntheaFiles().length) assert.ok(loaded > 90_000, `loaded ${loaded}`);
      assert.equal((await request('GET', `${s.fhir}/Patient?_summary=count`)).body.total, files.length - 2);
      for (const c of checks) {
        for (const type of ['Observation', 'Encounter', 'Condition', 'Immunization']) {
          const total = (await request('GET', `${s.fhir}/${type}?patient=Patient/${c.patientId}&_summary=count`)).body.total;
          assert.equal(total, c.counts.get(type) ?? 0, `${type} of Patient/${c.patientId}`);
        }
        const everything = (await request('GET', `${s.fhir}/Observation?patient.family=${encodeURIComponent(c.family)}&_summary=count`)).body.total;
        assert.ok(everything >= (c.counts.get('Observation') ?? 0), 'chained search finds at least the patient\'s own observations');
        const practitioners = await request('GET', `${s.fhir}/Encounter?patient=Patient/${c.patientId}&_include=Encounter:participant&_count=5`);
        assert.ok(practitioners.body.entry.some((e: any) => e.search.mode === 'include' && e.resource.resourceType === 'Practitioner'), 'conditional references resolved to stored Practitioners');
      }
    });
  });
}
