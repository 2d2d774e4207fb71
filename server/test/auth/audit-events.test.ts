import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent, Flag } from '@medplum/fhirtypes';
import pg from 'pg';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.ts';
import { startVigil } from '../../src/main.ts';
import { AuditTrail } from '../../src/ops/audit.ts';
import { news2Bot } from '../../../bots/news2/bot.ts';
import { runAuditEvent, type RunRecord } from '../../../bots/runtime/audit.ts';
import { auditIndex, auditIndexCovers, type Finished } from '../../src/ops/audit-events.ts';
import { securityAuditEvent } from '../../src/ops/security-audit.ts';
import { auditWriter, inlineAuditWriter } from '../../src/ops/audit-writer.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { extractIndex } from '../../src/store/extract.ts';
import { authHeader, bootstrapEnv, clientCredentialsToken, DRIVERS, freshPostgresDatabase, request, useServer, UUID_V7 } from '../support.ts';
import { startReceiver, subscribe, waitFor, type Receiver } from '../subscriptions/helpers.ts';
import { auditSearch } from './audit-search.ts';
import { authorizationCodeFlow } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'correct horse battery';
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const obs = (patient: string, id?: string) => ({
  resourceType: 'Observation', ...(id ? { id } : {}), status: 'final', subject: { reference: `Patient/${patient}` },
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, valueQuantity: { value: 70, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});
const subtype = (e: any): string => e.subtype[0].code;
const whats = (e: any): string[] => e.entity.map((x: any) => x.what?.reference).filter(Boolean);
const version = (e: any, what: string): string | undefined => e.entity.find((x: any) => x.what?.reference === what)?.detail?.find((d: any) => d.type === 'versionId')?.valueString;

for (const driver of DRIVERS) {
  describe(`AuditEvents for every access and change (${driver})`, () => {
    const s = useServer(driver, { VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true', VIGIL_OUTBOX_POLL_MS: '200' });
    let patient = ''; // patient/*.cruds for Patient/au-a, signed in as au-alpha
    let receiver: Receiver;

    const audits = auditSearch(s);

    before(async () => {
      receiver = await startReceiver();
      const put = async (r: any) => assert.ok([200, 201].includes((await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r)).status), r.id);
      await put({ resourceType: 'Patient', id: 'au-a' });
      await put({ resourceType: 'Patient', id: 'au-b' });
      await put(obs('au-a', 'au-obs-a'));
      await put(obs('au-b', 'au-obs-b'));
      assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'au-alpha', password: PASSWORD, fhirUser: 'Patient/au-a' })).status, 201);
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'au-app', redirect_uris: [REDIRECT], scopes: 'patient/*.cruds' })).status, 201);
      const res = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'au-app', redirectUri: REDIRECT, scope: 'launch/patient patient/*.cruds', username: 'au-alpha', password: PASSWORD });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      patient = res.body.access_token;
    });
    after(() => receiver.close());

    it('records creates, reads, searches, updates, vreads and deletes: what, action, client, address, time', async () => {
      const start = new Date().toISOString();
      const created = await request('POST', `${s.fhir}/Patient`, { resourceType: 'Patient', name: [{ family: 'Audited' }] });
      const id = created.body.id as string;
      await request('GET', `${s.fhir}/Patient/${id}`);
      await request('PUT', `${s.fhir}/Patient/${id}`, { ...created.body, active: true });
      await request('GET', `${s.fhir}/Patient/${id}/_history/1`);
      await request('GET', `${s.fhir}/Observation?subject=Patient/${id}&code=http://loinc.org|8867-4`);
      await fetch(`${s.fhir}/Observation/_search`, { method: 'POST', headers: { ...authHeader(), 'content-type': 'application/x-www-form-urlencoded' }, body: `subject=Patient/${id}` });
      await request('GET', `${s.fhir}?_type=Patient&_id=${id}`);
      await request('DELETE', `${s.fhir}/Patient/${id}`);
      const events = await audits(`patient=Patient/${id}`, (e) => e.length >= 7);
      const by = (code: string) => events.find((e) => subtype(e) === code);
      for (const e of events) assert.match(e.id, UUID_V7);
      assert.deepEqual(['create', 'read', 'update', 'vread', 'search-type', 'delete'].map((c) => by(c)?.action), ['C', 'R', 'U', 'R', 'E', 'D']);
      const create = by('create');
      assert.equal(create.type.code, 'rest');
      assert.equal(create.subtype[0].system, INTERACTION);
      assert.equal(create.outcome, '0');
      assert.equal(create.outcomeDesc, '201 Created');
      assert.ok(create.recorded >= start && create.recorded <= new Date().toISOString());
      assert.deepEqual(create.agent.map((a: any) => [a.altId, a.requestor, a.network?.address]), [[s.clientId, true, '127.0.0.1']]);
      assert.deepEqual(whats(create), [`Patient/${id}`, `Patient/${id}`]);
      assert.equal(version(create, `Patient/${id}`), '1');
      assert.equal(version(by('update'), `Patient/${id}`), '2');
      assert.equal(version(by('vread'), `Patient/${id}`), '1');
      const queries = (code: string, list = events) => list.filter((e) => subtype(e) === code).map((e) => decodeURIComponent(Buffer.from(e.entity.find((x: any) => x.role.code === '24').query, 'base64').toString()));
      assert.deepEqual(queries('search-type').sort(), [`subject=Patient/${id}`, `subject=Patient/${id}&code=http://loinc.org|8867-4`]);
      assert.ok(queries('search-system', await audits(`subtype=${INTERACTION}|search-system`)).includes(`_type=Patient&_id=${id}`));
      // searchable by resource, interaction and client
      assert.equal((await audits(`entity=Patient/${id}&subtype=${INTERACTION}|update`)).length, 1);
      assert.ok((await audits(`altid=${s.clientId}&action=D`)).some((e) => whats(e).includes(`Patient/${id}`)));
    });

    it('records the user and their app, and refusals: 404 for another patient\'s data, 403 writes, 401 without a token', async () => {
      await request('GET', `${s.fhir}/Observation/au-obs-a`, undefined, as(patient));
      await request('GET', `${s.fhir}/Observation/au-obs-b`, undefined, as(patient));
      await request('POST', `${s.fhir}/Observation`, obs('au-b'), as(patient));
      await request('GET', `${s.fhir}/Observation/au-obs-a`, undefined, { authorization: '' });
      await request('GET', `${s.fhir}/Observation?subject=Patient/au-b`, undefined, as(patient));

      const read = (await audits('entity=Observation/au-obs-a&agent=Patient/au-a'))[0];
      assert.deepEqual(read.agent.map((a: any) => [a.who.reference ?? a.who.identifier?.value, a.altId, a.requestor]), [['Patient/au-a', 'au-alpha', true], ['au-app', 'au-app', false]]);
      assert.deepEqual(whats(read).sort(), ['Observation/au-obs-a', 'Patient/au-a'], 'the patient the data is about');

      const hidden = (await audits('entity=Observation/au-obs-b&agent=Patient/au-a'))[0];
      assert.equal(hidden.outcome, '4');
      assert.equal(hidden.outcomeDesc, '404 Not Found');
      assert.deepEqual(whats(hidden), ['Observation/au-obs-b'], 'a refused request names no patient');

      const refused = await audits('agent=Patient/au-a&action=C', (e) => e.some((x) => x.outcomeDesc === '403 Forbidden'));
      assert.equal(refused.find((x) => x.outcomeDesc === '403 Forbidden').outcome, '4');

      const anonymous = await audits('entity=Observation/au-obs-a&outcome=4', (e) => e.some((x) => x.outcomeDesc === '401 Unauthorized'));
      const unauthenticated = anonymous.find((x) => x.outcomeDesc === '401 Unauthorized');
      assert.deepEqual(unauthenticated.agent.map((a: any) => [a.who.display, a.network.address]), [['unauthenticated', '127.0.0.1']]);
    });

    it('names each entry of a batch or transaction with its outcome', async () => {
      const res = await request('POST', s.fhir, { resourceType: 'Bundle', type: 'batch', entry: [
        { resource: obs('au-a'), request: { method: 'POST', url: 'Observation' } },
        { request: { method: 'GET', url: 'Observation/au-obs-b' } },
        { request: { method: 'GET', url: 'Observation/au-missing' } },
      ] }, as(patient));
      assert.equal(res.status, 200);
      const created = (res.body.entry[0].response.location as string).split('/_history')[0];
      const [event] = await audits(`entity=${created}&subtype=${INTERACTION}|batch`);
      assert.equal(subtype(event), 'batch');
      assert.deepEqual(event.entity.filter((e: any) => e.description).map((e: any) => [e.what?.reference, e.description, e.detail[0].valueString]), [
        [created, 'POST Observation', '201 Created'],
        ['Observation/au-obs-b', 'GET Observation/au-obs-b', '404'],
        ['Observation/au-missing', 'GET Observation/au-missing', '404'],
      ]);
    });

    it('shows a patient only the audit trail of their own compartment, and never lets anyone change it', async () => {
      await audits('agent=Patient/au-a');
      const mine = await request('GET', `${s.fhir}/AuditEvent?_count=1000`, undefined, as(patient));
      assert.equal(mine.status, 200);
      const events = mine.body.entry.map((e: any) => e.resource);
      assert.ok(events.length > 0);
      for (const e of events) assert.ok([...whats(e), ...e.agent.map((a: any) => a.who?.reference)].includes('Patient/au-a'), JSON.stringify(e));
      assert.ok(events.every((e: any) => !whats(e).includes('Patient/au-b')));
      const [any] = await audits(`entity=Observation/au-obs-b&altid=${s.clientId}`);
      assert.equal((await request('GET', `${s.fhir}/AuditEvent/${any.id}`, undefined, as(patient))).status, 404);
      assert.equal((await request('PUT', `${s.fhir}/AuditEvent/${any.id}`, { ...any, outcome: '0' })).status, 403, 'not even an administrator');
      assert.equal((await request('DELETE', `${s.fhir}/AuditEvent/${any.id}`)).status, 403);
    });

    it('indexes its AuditEvents exactly as the generic indexer would', async () => {
      await audits('outcome=4');
      const rows = await s.vigil.db.query<{ content: string }>('SELECT content FROM "AuditEvent"');
      const written = rows.map((r) => JSON.parse(r.content)).filter((e) => e.type.code === 'rest');
      assert.ok(written.length > 20);
      for (const e of written) assert.deepEqual(auditIndex(e, s.base), extractIndex(e, s.base), JSON.stringify(e));
    });

    it('indexes the server\'s own AuditEvents (bot runs, security events) as the generic indexer would, where it covers them', async () => {
      const run = (patientId: string | undefined, result: RunRecord['result'], written: RunRecord['written']) => runAuditEvent({
        bot: news2Bot, agent: { reference: 'Device/bot', display: 'Vigil NEWS2' }, patientId, result, written, attempt: 2,
        change: { interaction: 'create', resourceType: 'Observation', id: 'o1', versionId: '1' },
      });
      const events: AuditEvent[] = [
        run('p1', { outcome: 'success', message: 'NEWS2 3 (low)' }, [{ resource: { resourceType: 'Flag', id: 'f1', meta: { versionId: '2' } } as Flag, interaction: 'update' }]),
        run(undefined, { outcome: 'skipped' }, []),
        run('p2', { error: 'TimeoutError: late' }, []),
        securityAuditEvent({ kind: 'oauth', subtype: 'login', action: 'E', username: 'au-alpha', fhirUser: 'Practitioner/x', address: '::ffff:10.0.0.1', clientId: 'app' }, s.base),
        securityAuditEvent({ kind: 'oauth', subtype: 'token', action: 'E', failure: 'invalid_client', clientId: 'app' }, s.base),
        securityAuditEvent({ kind: 'websocket', subtype: 'bind', action: 'E', address: '127.0.0.1', entity: [{ what: { reference: 'Subscription/s1' } }] }, s.base),
      ];
      const stored = (await s.vigil.db.query<{ content: string }>('SELECT content FROM "AuditEvent"')).map((r) => JSON.parse(r.content) as AuditEvent);
      let compared = 0;
      for (const e of [...events.map((x) => ({ ...x, id: 'a1', meta: { versionId: '1', lastUpdated: x.recorded } })), ...stored]) {
        if (!auditIndexCovers(e)) continue;
        assert.deepEqual(auditIndex(e, s.base), extractIndex(e, s.base), JSON.stringify(e));
        compared++;
      }
      assert.ok(events.every(auditIndexCovers), 'the shapes the server writes are covered');
      assert.ok(compared > events.length, `compared ${compared}`);
      assert.ok(!auditIndexCovers({ ...events[0], agent: [{ ...events[0].agent[0], role: [{ text: 'bot' }] }] }), 'agent roles are left to the generic indexer');
    });

    it('notifies no subscription: audit writes stay beside the change outbox', async () => {
      await subscribe(s.fhir, { criteria: 'AuditEvent', channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/fhir+json' } });
      receiver.received.length = 0;
      await request('GET', `${s.fhir}/Patient/au-a`);
      await audits('entity=Patient/au-a&subtype=read');
      // control: an AuditEvent a client records itself is an ordinary resource, delivered in commit order after any before it
      const own = await request('POST', `${s.fhir}/AuditEvent`, {
        resourceType: 'AuditEvent', type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110100' }, recorded: new Date().toISOString(),
        agent: [{ who: { display: 'an EHR' }, requestor: true }], source: { observer: { display: 'an EHR' } },
      });
      assert.equal(own.status, 201);
      // bots' run records are written through the store like any resource: only the server's request records must be absent
      const notified = () => receiver.received.map((r) => JSON.parse(r.body)).filter((e) => e.type.code !== 'bot-run');
      await waitFor('the client\'s AuditEvent', () => notified().length > 0);
      assert.deepEqual(notified().map((e) => e.id), [own.body.id]);
    });
  });
}

describe('the audit trail at shutdown (postgres)', () => {
  it('writes what is still buffered before the database closes', async () => {
    const db = await freshPostgresDatabase();
    try {
      const vigil = await startVigil(loadConfig({ PORT: '0', LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', MQTT_PORT: '0', DATABASE_URL: db.url, ...bootstrapEnv() }));
      const token = await clientCredentialsToken(vigil.config.baseUrl, vigil.config.bootstrapClientId as string, vigil.config.bootstrapClientSecret as string);
      for (let i = 0; i < 20; i++) await request('GET', `${vigil.config.baseUrl}/fhir/R4/Patient/shutdown-${i}`, undefined, as(token));
      await vigil.stop();
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "AuditEvent" WHERE content LIKE '%Patient/shutdown-%'`);
      await client.end();
      assert.equal(rows[0].n, 20);
    } finally {
      await db.drop();
    }
  });
});

describe('the audit trail\'s inserts (postgres)', () => {
  it('writes a full batch as soon as there is one, the rest at the flush', async () => {
    const fresh = await freshPostgresDatabase();
    const db = await openPostgres(fresh.url, 2);
    const inserts: number[] = [];
    const query = db.query.bind(db);
    db.query = (text, params) => {
      if (text.startsWith('INSERT INTO "AuditEvent"')) inserts.push((JSON.parse(params?.[0] as string) as unknown[]).length);
      return query(text, params);
    };
    const trail = new AuditTrail(inlineAuditWriter(db, 'http://localhost'), 'http://localhost', createLogger('silent'), new Registry(), { flushMs: 60_000, batchSize: 8, maxBuffered: 100 });
    const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM "AuditEvent"'))[0].n;
    const event = (i: number): AuditEvent => ({
      resourceType: 'AuditEvent', type: { code: 'batch-test' }, recorded: new Date().toISOString(),
      agent: [{ who: { display: `agent ${i}` }, requestor: true }], source: { observer: { display: 'test' } },
    });
    try {
      for (let i = 0; i < 9; i++) trail.recordEvent(event(i));
      await waitFor('the full batch', async () => (await count()) === 8, 5_000);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await count(), 8, 'the ninth waits for the flush');
      for (let i = 9; i < 13; i++) trail.recordEvent(event(i));
      await trail.flush();
      assert.equal(await count(), 13);
      assert.deepEqual(inserts, [8, 5]);
    } finally {
      await trail.stop();
      await db.close();
      await fresh.drop();
    }
  });
});

describe('the audit writer\'s thread (postgres)', () => {
  const read = (path: string): Finished => ({
    recorded: new Date().toISOString(), base: '/fhir/R4', method: 'GET', path, query: '', status: 200,
    who: { clientId: 'thread-test', sub: 'thread-test', userPatients: [], system: true },
  });

  it('builds and inserts the rows of a batch, the patients of what was read included, and stops when closed', async () => {
    const fresh = await freshPostgresDatabase();
    const db = await openPostgres(fresh.url, 2);
    const writer = auditWriter(db, fresh.url, 'http://localhost');
    try {
      await db.query(`INSERT INTO "Observation" (id, version_id, last_updated, content, compartments) VALUES ('thread-obs', 1, now(), '{}', '{Patient/thread-p}')`);
      await writer.write([read('/Observation/thread-obs'), read('/Patient/absent')], [], []);
      const rows = await db.query<{ content: string; patient: string[] | null }>(`SELECT content, patient FROM "AuditEvent" WHERE altid @> '{thread-test}' ORDER BY content`);
      assert.equal(rows.length, 2);
      const events = rows.map((r) => JSON.parse(r.content));
      assert.deepEqual(events.map((e) => e.entity[0].what.reference).sort(), ['Observation/thread-obs', 'Patient/absent']);
      // the Observation's patient, looked up by the thread; a Patient read names that patient itself
      assert.deepEqual(rows.flatMap((r) => r.patient ?? []).sort(), ['Patient/absent', 'Patient/thread-p']);
    } finally {
      await writer.close();
      await db.close();
      await fresh.drop();
    }
  });

  it('fails a batch it cannot write, and is started again for the next one', async () => {
    const fresh = await freshPostgresDatabase();
    const db = await openPostgres(fresh.url, 2);
    const missing = new URL(fresh.url);
    missing.pathname = '/vigil_no_such_database';
    const writer = auditWriter(db, missing.toString(), 'http://localhost');
    try {
      await assert.rejects(writer.write([read('/Patient/a')], [], []), /vigil_no_such_database|stopped/);
      await assert.rejects(writer.write([read('/Patient/b')], [], []), /vigil_no_such_database|stopped/);
    } finally {
      await writer.close();
      await db.close();
      await fresh.drop();
    }
  });
});
