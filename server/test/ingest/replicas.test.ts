import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { startVigil, type Vigil } from '../../src/main.ts';
import { bootstrapEnv, clientCredentialsToken, freshPostgresDatabase, TEST_ENV } from '../support.ts';

/** Replicas of one deployment: servers behind one public URL, sharing a PostgreSQL database and nothing else (no Redis). */
const PUBLIC_URL = 'http://vigil.test';

describe('device ingest on replicas of one database (postgres)', () => {
  const env = bootstrapEnv();
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let a: Vigil;
  let b: Vigil;
  let token: string;
  const replica = () => startVigil(loadConfig({ ...TEST_ENV, DATABASE_URL: database.url, VIGIL_BASE_URL: PUBLIC_URL, ...env }));
  /** Where the load balancer would send a request: this replica's own port. */
  const at = (v: Vigil) => `http://127.0.0.1:${v.port}`;
  const fhir = async (v: Vigil, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${at(v)}/fhir/R4/${path}`, { method, headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return (await res.json()) as any;
  };
  const ingest = async (v: Vigil, message: unknown) => {
    const res = await fetch(`${at(v)}/ingest/with-encounter`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(message) });
    return ((await res.json()) as any).results[0];
  };
  let seconds = 0;
  const reading = (extra: Record<string, unknown> = {}) =>
    ({ deviceId: 'rebound-1', timestamp: new Date(Date.now() - 60_000 - ++seconds * 1000).toISOString(), type: 'heart-rate', value: 70, unit: '/min', ...extra });
  const subjectOf = async (result: any) => (await fhir(a, 'GET', `Observation/${result.observations[0].id}`)).subject.reference;

  before(async () => {
    database = await freshPostgresDatabase();
    a = await replica();
    b = await replica();
    token = await clientCredentialsToken(at(a), env.VIGIL_BOOTSTRAP_CLIENT_ID, env.VIGIL_BOOTSTRAP_CLIENT_SECRET);
    const generic = await fetch(`${at(a)}/ingest/mappings/vigil-generic`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json()) as any;
    const { name: _n, updatedAt: _u, ...definition } = generic;
    for (const t of definition.deviceMapping.template) t.template.encounterIdExpression = '$.encounterId';
    const put = await fetch(`${at(a)}/ingest/mappings/with-encounter`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(definition) });
    assert.ok(put.ok);
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    await database?.drop();
  });

  it('stores readings under the new patient at once after the Device is re-bound through another replica', async () => {
    const first = await fhir(a, 'POST', 'Patient', { resourceType: 'Patient' });
    const second = await fhir(a, 'POST', 'Patient', { resourceType: 'Patient' });
    const device = await fhir(a, 'POST', 'Device', { resourceType: 'Device', identifier: [{ system: 'urn:serial', value: 'rebound-1' }], patient: { reference: `Patient/${first.id}` } });
    assert.equal(await subjectOf(await ingest(b, reading())), `Patient/${first.id}`, 'resolved, and cached, by b');

    await fhir(a, 'PUT', `Device/${device.id}`, { ...device, patient: { reference: `Patient/${second.id}` } });
    assert.equal(await subjectOf(await ingest(b, reading())), `Patient/${second.id}`);

    const visit = await fhir(a, 'POST', 'Encounter', { resourceType: 'Encounter', status: 'in-progress', identifier: [{ value: 'rebound-visit' }], class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'HH' }, subject: { reference: `Patient/${second.id}` } });
    assert.equal((await ingest(b, reading({ encounterId: 'rebound-visit' }))).status, 'ok');
    await fhir(a, 'PUT', `Encounter/${visit.id}`, { ...visit, status: 'entered-in-error' });
    const after = await ingest(b, reading({ encounterId: 'rebound-visit' }));
    assert.equal(after.status, 'rejected');
    assert.match(after.reason, /entered-in-error/);
  });
});
