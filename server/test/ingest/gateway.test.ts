import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { READING_TIME_URL } from '../../src/ingest/template/reading-time.ts';
import { DRIVERS, UUID_V7, authHeader, request, scrape, useServer } from '../support.ts';

const now = () => new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
/** A distinct reading time per value, so that readings do not share an Observation. */
const at = (value: number) => new Date(Date.now() - 60_000 - value * 1000).toISOString();
const post = async (base: string, mapping: string, body: unknown) => {
  const res = await fetch(`${base}/ingest/${mapping}`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeader() }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
};

for (const driver of DRIVERS) {
  describe(`device ingest over HTTP (${driver})`, () => {
    const s = useServer(driver);

    const enrol = async (deviceId: string) => {
      const patient = (await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient' })).body;
      await request('POST', `${s.fhir}/Device`, { resourceType: 'Device', identifier: [{ system: 'urn:serial', value: deviceId }], patient: { reference: `Patient/${patient.id}` } });
      return patient.id as string;
    };

    it('maps readings to Observations once, whatever is re-sent, and dead-letters the bad ones', async () => {
      const patientId = await enrol('gw-1');
      const t = now();
      const hr = { deviceId: 'gw-1', timestamp: t, type: 'heart-rate', value: 72, unit: '/min' };
      const res = await post(s.base, 'vigil-generic', [
        hr,
        { deviceId: 'gw-1', timestamp: t, type: 'systolic', value: 128, unit: 'mmHg' },
        { deviceId: 'gw-unknown', timestamp: t, type: 'heart-rate', value: 70, unit: '/min' },
        { deviceId: 'gw-1', timestamp: t, type: 'diastolic', value: 81, unit: 'mmHg' },
        { deviceId: 'gw-1', timestamp: t, type: 'heart-rate', value: 'fast', unit: '/min' },
      ]);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.results.map((r: any) => r.status), ['ok', 'ok', 'rejected', 'ok', 'rejected']);
      assert.match(res.body.results[2].reason, /Unknown device "gw-unknown"/);
      const hrId = res.body.results[0].observations[0].id;
      assert.equal(res.body.results[0].observations[0].outcome, 'created');
      assert.match(hrId, UUID_V7);
      assert.equal(res.body.results[1].observations[0].id, res.body.results[3].observations[0].id, 'systolic and diastolic make one panel');

      const again = await post(s.base, 'vigil-generic', hr);
      assert.deepEqual(again.body.results[0].observations, [{ id: hrId, outcome: 'unchanged' }]);

      const obs = (await request('GET', `${s.fhir}/Observation?patient=Patient/${patientId}&_sort=code`)).body.entry.map((e: any) => e.resource);
      assert.equal(obs.length, 2);
      const heart = obs.find((o: any) => o.code.coding[0].code === '8867-4');
      assert.equal(heart.valueQuantity.value, 72);
      assert.equal(heart.valueQuantity.code, '/min');
      assert.equal(Date.parse(heart.effectiveDateTime), Date.parse(t));
      assert.match(heart.device.reference, /^Device\//);
      assert.equal(heart.subject.reference, `Patient/${patientId}`);
      assert.ok(heart.issued);
      assert.equal(heart.identifier[0].system, 'urn:vigil:ingest');
      const bp = obs.find((o: any) => o.code.coding[0].code === '85354-9');
      assert.deepEqual(bp.component.map((c: any) => [c.code.coding[0].code, c.valueQuantity.value]).sort(), [['8462-4', 81], ['8480-6', 128]]);

      const dead = await fetch(`${s.base}/ingest/dead-letters?mapping=vigil-generic`, { headers: authHeader() }).then((r) => r.json()) as any;
      assert.ok(dead.deadLetters.some((d: any) => d.id === res.body.results[2].deadLetterId && d.message.deviceId === 'gw-unknown'));
    });

    /** vigil-generic with hourly heart-rate Observations. */
    const hourly = async () => {
      const generic = await fetch(`${s.base}/ingest/mappings/vigil-generic`, { headers: authHeader() }).then((r) => r.json()) as any;
      const { name: _n, updatedAt: _u, ...definition } = generic;
      definition.fhirMapping.template.find((t: any) => t.template.typeName === 'heartrate').template.periodInterval = 60;
      const put = await fetch(`${s.base}/ingest/mappings/hourly-hr`, { method: 'PUT', headers: { 'content-type': 'application/json', ...authHeader() }, body: JSON.stringify(definition) });
      assert.ok(put.ok);
      return 'hourly-hr';
    };

    it('keeps the latest reading of an hourly Observation, so a re-sent earlier one changes nothing', async () => {
      const mapping = await hourly();
      const patientId = await enrol('gw-hourly');
      const reading = (timestamp: string, value: number) => ({ deviceId: 'gw-hourly', timestamp, type: 'heart-rate', value, unit: '/min' });
      const later = await post(s.base, mapping, reading('2024-05-01T10:30:00Z', 80));
      const [{ id, outcome }] = later.body.results[0].observations;
      assert.equal(outcome, 'created');

      const resent = await post(s.base, mapping, reading('2024-05-01T10:05:00Z', 70));
      assert.deepEqual(resent.body.results[0].observations, [{ id, outcome: 'unchanged' }]);
      const stored = (await request('GET', `${s.fhir}/Observation/${id}`)).body;
      assert.equal(stored.valueQuantity.value, 80);
      assert.equal(stored.meta.versionId, '1');
      assert.deepEqual(stored.effectivePeriod, { start: '2024-05-01T10:00:00.000Z', end: '2024-05-01T11:00:00.000Z' });
      assert.deepEqual(stored.extension, [{ url: READING_TIME_URL, valueDateTime: '2024-05-01T10:30:00.000Z' }]);

      const newer = await post(s.base, mapping, reading('2024-05-01T10:45:00Z', 90));
      assert.deepEqual(newer.body.results[0].observations, [{ id, outcome: 'updated' }]);
      assert.equal((await request('GET', `${s.fhir}/Observation?patient=Patient/${patientId}`)).body.entry[0].resource.valueQuantity.value, 90);
    });

    it('measures ingest latency from the newest reading, not from the end of its hour', async () => {
      const mapping = await hourly();
      await enrol('gw-latency');
      const reading = (timestamp: string, value: number) => ({ deviceId: 'gw-latency', timestamp, type: 'heart-rate', value, unit: '/min' });
      const before = await scrape(s.base);
      const res = await post(s.base, mapping, [reading('2024-05-01T10:30:00Z', 80), reading('2024-05-01T10:05:00Z', 70)]);
      const expected = (Date.now() - Date.parse('2024-05-01T10:30:00Z')) / 1000;
      assert.equal(res.body.results[0].observations[0].outcome, 'created');
      const after = await scrape(s.base);
      assert.equal(after('vigil_ingest_latency_seconds_count') - before('vigil_ingest_latency_seconds_count'), 1);
      // the hour ends 1,800 s after the newest reading
      const observed = after('vigil_ingest_latency_seconds_sum') - before('vigil_ingest_latency_seconds_sum');
      assert.ok(Math.abs(observed - expected) < 60, `observed ${observed} s, expected ${expected} s`);
    });

    it('replays a dead letter once its device is enrolled', async () => {
      const res = await post(s.base, 'vigil-generic', { deviceId: 'gw-late', timestamp: now(), type: 'spo2', value: 95, unit: '%' });
      const id = res.body.results[0].deadLetterId;
      assert.ok(id);
      await enrol('gw-late');
      const replay = await fetch(`${s.base}/ingest/dead-letters/${id}/$replay`, { method: 'POST', headers: authHeader() }).then((r) => r.json()) as any;
      assert.equal(replay.result.status, 'ok');
      assert.equal(replay.result.observations[0].outcome, 'created');
    });

    it('creates Patient and Device in Create mode, idempotently under concurrency, never re-binding', async () => {
      const generic = await fetch(`${s.base}/ingest/mappings/vigil-generic`, { headers: authHeader() }).then((r) => r.json()) as any;
      const { name: _n, updatedAt: _u, ...definition } = generic;
      const put = await fetch(`${s.base}/ingest/mappings/auto-enrol`, { method: 'PUT', headers: { 'content-type': 'application/json', ...authHeader() }, body: JSON.stringify({ ...definition, identityResolution: 'Create' }) });
      assert.equal(put.status, 201);
      const t = now();
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        post(s.base, 'auto-enrol', { deviceId: 'auto-1', patientId: 'mrn-1', timestamp: t, type: 'heart-rate', value: 60 + i, unit: '/min' })));
      assert.ok(results.every((r) => r.body.results[0].status === 'ok'));
      assert.equal((await request('GET', `${s.fhir}/Device?identifier=auto-1`)).body.entry.length, 1);
      assert.equal((await request('GET', `${s.fhir}/Patient?identifier=urn:vigil:patient-id|mrn-1`)).body.entry.length, 1);
      const stolen = await post(s.base, 'auto-enrol', { deviceId: 'auto-1', patientId: 'mrn-2', timestamp: t, type: 'heart-rate', value: 61, unit: '/min' });
      assert.equal(stolen.body.results[0].status, 'rejected');
      assert.match(stolen.body.results[0].reason, /bound to/);
    });

    /** vigil-generic taking an encounter id from the message, in the given identity mode. */
    const withEncounter = async (name: string, identityResolution: 'Lookup' | 'Create') => {
      const generic = await fetch(`${s.base}/ingest/mappings/vigil-generic`, { headers: authHeader() }).then((r) => r.json()) as any;
      const { name: _n, updatedAt: _u, ...definition } = generic;
      for (const t of definition.deviceMapping.template) t.template.encounterIdExpression = '$.encounterId';
      const put = await fetch(`${s.base}/ingest/mappings/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...authHeader() }, body: JSON.stringify({ ...definition, identityResolution }) });
      assert.ok(put.ok);
      return name;
    };
    const encounter = async (patientId: string, value: string) =>
      (await request('POST', `${s.fhir}/Encounter`, {
        resourceType: 'Encounter', status: 'in-progress', identifier: [{ system: 'urn:hospital:visit', value }],
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HH' }, subject: { reference: `Patient/${patientId}` },
      })).body.id as string;

    it('sets Observation.encounter from the Encounter the message names, and rejects unknown or foreign Encounters', async () => {
      const mapping = await withEncounter('enc-lookup', 'Lookup');
      const patientId = await enrol('enc-1');
      const otherId = await enrol('enc-other-device');
      const visit = await encounter(patientId, 'visit-1');
      await encounter(otherId, 'visit-other');
      const reading = (encounterId: string | undefined, value: number) => ({ deviceId: 'enc-1', encounterId, timestamp: at(value), type: 'heart-rate', value, unit: '/min' });
      const res = await post(s.base, mapping, [reading('visit-1', 70), reading('visit-unknown', 71), reading('visit-other', 72), reading(undefined, 73)]);
      assert.deepEqual(res.body.results.map((r: any) => r.status), ['ok', 'rejected', 'rejected', 'ok']);
      assert.match(res.body.results[1].reason, /Unknown encounter "visit-unknown"/);
      assert.match(res.body.results[2].reason, new RegExp(`Encounter/.+ \\("visit-other"\\) is of Patient/${otherId}, not of Patient/${patientId}`));
      const stored = (id: string) => request('GET', `${s.fhir}/Observation/${id}`).then((r) => r.body);
      assert.deepEqual((await stored(res.body.results[0].observations[0].id)).encounter, { reference: `Encounter/${visit}` });
      assert.equal((await stored(res.body.results[3].observations[0].id)).encounter, undefined);
      assert.equal((await request('GET', `${s.fhir}/Observation?encounter=Encounter/${visit}`)).body.entry.length, 1);
    });

    it('never creates Encounters, not even in Create mode', async () => {
      const mapping = await withEncounter('enc-create', 'Create');
      const res = await post(s.base, mapping, { deviceId: 'enc-auto', patientId: 'mrn-enc', encounterId: 'visit-new', timestamp: now(), type: 'heart-rate', value: 70, unit: '/min' });
      assert.equal(res.body.results[0].status, 'rejected');
      assert.match(res.body.results[0].reason, /Unknown encounter "visit-new"/);
      assert.equal((await request('GET', `${s.fhir}/Encounter?identifier=visit-new`)).body.entry.length, 0);
      const [patient] = (await request('GET', `${s.fhir}/Patient?identifier=urn:vigil:patient-id|mrn-enc`)).body.entry;
      await encounter(patient.resource.id, 'visit-new');
      const replay = await fetch(`${s.base}/ingest/dead-letters/${res.body.results[0].deadLetterId}/$replay`, { method: 'POST', headers: authHeader() }).then((r) => r.json()) as any;
      assert.equal(replay.result.status, 'ok');
    });

    it('rejects a message naming another patient than the one its device is bound to', async () => {
      const patient = (await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient', identifier: [{ system: 'urn:hospital:mrn', value: 'mrn-42' }] })).body;
      await request('POST', `${s.fhir}/Device`, { resourceType: 'Device', identifier: [{ system: 'urn:serial', value: 'pid-1' }], patient: { reference: `Patient/${patient.id}` } });
      const reading = (patientId: string | undefined, value: number) => ({ deviceId: 'pid-1', patientId, timestamp: at(value), type: 'heart-rate', value, unit: '/min' });
      const res = await post(s.base, 'vigil-generic', [reading('mrn-42', 70), reading('mrn-99', 71), reading(undefined, 72)]);
      assert.deepEqual(res.body.results.map((r: any) => r.status), ['ok', 'rejected', 'ok']);
      assert.match(res.body.results[1].reason, new RegExp(`patient "mrn-99".*Patient/${patient.id}`));
      const stored = (await request('GET', `${s.fhir}/Observation?patient=Patient/${patient.id}`)).body.entry.map((e: any) => e.resource.valueQuantity.value).sort();
      assert.deepEqual(stored, [70, 72]);
    });

    // PostgreSQL's lock table is shared by its connections; PGlite (one connection) would only take long
    it('takes a batch of 16,000 readings, and concurrent re-sends of it store each reading once', { skip: driver === 'pglite' }, async () => {
      const patientId = await enrol('gw-big');
      const t0 = Date.now() - 3 * 86_400_000;
      // more readings than PostgreSQL's shared lock table holds entries (64 per connection × 100)
      const batch = Array.from({ length: 16_000 }, (_, i) => ({ deviceId: 'gw-big', timestamp: new Date(t0 + i * 10_000).toISOString(), type: 'heart-rate', value: 60 + (i % 40), unit: '/min' }));
      const results = await Promise.all([post(s.base, 'vigil-generic', batch), post(s.base, 'vigil-generic', batch.slice(0, 8_000))]);
      for (const res of results) {
        assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
        assert.deepEqual(res.body.results.filter((r: { status: string }) => r.status !== 'ok').slice(0, 2), []);
      }
      const [row] = await s.vigil.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Observation" WHERE patient = $1 AND NOT deleted`, [`Patient/${patientId}`]);
      assert.equal(row.n, 16_000);
    });

    it('refuses invalid mappings with the template and field', async () => {
      const bad = await fetch(`${s.base}/ingest/mappings/broken`, {
        method: 'PUT', headers: { 'content-type': 'application/json', ...authHeader() },
        body: JSON.stringify({ deviceMapping: { templateType: 'CollectionContent', template: [{ templateType: 'NoSuchContent', template: {} }] }, fhirMapping: { templateType: 'CollectionFhir', template: [] } }),
      });
      assert.equal(bad.status, 400);
      const outcome = await bad.json() as any;
      assert.equal(outcome.resourceType, 'OperationOutcome');
      assert.match(outcome.issue[0].expression[0], /deviceMapping\.template\[0\]/);
      assert.equal((await fetch(`${s.base}/ingest/mappings/broken`, { headers: authHeader() })).status, 404);
    });

    it('keeps a non-JSON body as a dead letter and answers 400; unknown mapping is 404', async () => {
      const res = await fetch(`${s.base}/ingest/vigil-generic`, { method: 'POST', headers: authHeader(), body: '{not json' });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(await res.json()), /dead letter/);
      assert.equal((await post(s.base, 'no-such-mapping', { a: 1 })).status, 404);
    });
  });
}
