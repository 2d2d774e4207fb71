import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent, Bundle, Device, Encounter, Flag, Observation, RiskAssessment, Subscription } from '@medplum/fhirtypes';
import express from 'express';
import { BotHost, type BotJob } from '../../../bots/runtime/host.ts';
import type { Bot } from '../../../bots/runtime/manifest.ts';
import { FhirRequestError, restClient } from '../../../bots/runtime/rest-client.ts';
import { BOT_CODE_SYSTEM } from '../../../bots/runtime/settings.ts';
import { subscribeBots } from '../../../bots/runtime/subscriber.ts';
import { BUILT_IN_BOTS } from '../../src/bots.ts';
import { loadConfig } from '../../src/config.ts';
import { notifyRouter } from '../../src/external-bots.ts';
import { createQueueFactory, type QueueFactory } from '../../src/jobs/queue.ts';
import { startVigil, type Vigil } from '../../src/main.ts';
import { authHeader, clientCredentialsToken, freePort, request, TEST_ENV, useServer } from '../support.ts';
import { vital } from './fixtures.ts';
import { enrol, eventually, post, search } from './helpers.ts';

const NEWS2 = 'http://snomed.info/sct|1104051000000101';
const SECRET = randomBytes(32).toString('base64url');
const TRIGGERED = BUILT_IN_BOTS.filter((b) => b.trigger).map((b) => b.name);

/**
 * Bots are ordinary subscribers: a Vigil whose bots run on an external FHIR server, here another
 * Vigil (PostgreSQL, its own bots off) standing in for HAPI or any R4 server with rest-hook
 * Subscriptions. Everything goes over HTTP: the Subscriptions, their notifications, every read and
 * write of the runs.
 */
describe('bots on an external FHIR server', () => {
  const store = useServer('postgres', { VIGIL_BOTS: 'off', VIGIL_ALLOW_PRIVATE_ENDPOINTS: 'true' });
  let bots: Vigil;
  const fhir = () => restClient({ baseUrl: store.fhir, authorization: async () => `Bearer ${store.token}` });

  before(async () => {
    const config = loadConfig({
      ...TEST_ENV,
      VIGIL_BOOTSTRAP_CLIENT_ID: 'bots-admin',
      VIGIL_BOOTSTRAP_CLIENT_SECRET: randomBytes(24).toString('base64url'),
      VIGIL_BOTS_FHIR_URL: store.fhir,
      VIGIL_BOTS_FHIR_TOKEN_URL: `${store.base}/oauth2/token`,
      VIGIL_BOTS_FHIR_CLIENT_ID: store.clientId,
      VIGIL_BOTS_FHIR_CLIENT_SECRET: store.clientSecret,
      VIGIL_BOTS_FHIR_SCOPE: 'system/*.*',
      VIGIL_BOTS_NOTIFY_SECRET: SECRET,
    });
    config.dataDir = 'memory://';
    bots = await startVigil(config);
  });
  after(() => bots?.stop());

  const subscriptions = (bot: string) => search<Subscription>(store, `Subscription?_tag=${BOT_CODE_SYSTEM}|${bot}`);

  it('subscribes each triggered bot there, active, with its notification secret', async () => {
    for (const name of TRIGGERED) {
      const [subscription, ...more] = await eventually(async () => {
        const found = await subscriptions(name);
        return found[0]?.status === 'active' ? found : undefined;
      }, `the ${name} Subscription`);
      assert.equal(more.length, 0);
      assert.equal(subscription.channel.endpoint, `${bots.config.baseUrl}/bots/notify/${name}`);
      assert.equal(subscription.channel.payload, 'application/fhir+json');
      assert.deepEqual(subscription.channel.header, [`Authorization: Bearer ${SECRET}`]);
    }
    for (const bot of BUILT_IN_BOTS.filter((b) => !b.trigger)) assert.deepEqual(await subscriptions(bot.name), []);
  });

  it('scores NEWS2 and raises the Flag there, from readings written there', async () => {
    const { patient } = await enrol(store, 'External');
    // RR 26 →3, SpO2 90 →3, systolic 95 →2, pulse 125 →2, temperature 39.5 →2: NEWS2 12, high
    const inputs: [string, number][] = [['9279-1', 26], ['2708-6', 90], ['8480-6', 95], ['8867-4', 125], ['8310-5', 39.5]];
    for (const [i, [code, value]] of inputs.entries()) await post(store, vital(patient, code, value, 10 - i));
    const [flag] = await eventually(async () => {
      const found = await search<Flag>(store, `Flag?patient=Patient/${patient}`);
      return found.some((f) => f.code?.coding?.[0].code === 'news2-high') ? found.filter((f) => f.code?.coding?.[0].code === 'news2-high') : undefined;
    }, 'the NEWS2 Flag on the external server', 30_000);
    assert.match(flag.author?.reference ?? '', /^Device\//);
    const [score] = await search<Observation>(store, `Observation?subject=Patient/${patient}&code=${NEWS2}&_sort=-date`);
    assert.equal(score.valueInteger, 12);
    assert.equal((await search<RiskAssessment>(store, `RiskAssessment?subject=Patient/${patient}`))[0]?.prediction?.[0].qualitativeRisk?.coding?.[0].code, 'high');
    // the runs are audited in the bots' own Vigil, which holds none of the data
    const token = await clientCredentialsToken(bots.config.baseUrl, 'bots-admin', bots.config.bootstrapClientSecret as string);
    const runs = await eventually(async () => {
      const res = await request<Bundle<AuditEvent>>('GET', `${bots.config.baseUrl}/fhir/R4/AuditEvent?entity=${store.fhir}/${score.derivedFrom?.[0].reference}&_count=50`, undefined, authHeader(token));
      return res.body.entry?.length ? res.body.entry.map((e) => e.resource as AuditEvent) : undefined;
    }, 'the runs\' AuditEvents');
    assert.ok(runs.some((r) => r.subtype?.[0].code === 'news2' && r.outcome === '0'));
    assert.equal((await request('GET', `${bots.config.baseUrl}/fhir/R4/Flag/${flag.id}`, undefined, authHeader(token))).status, 404);
  });

  it('refuses a notification without the secret, for no bot, or without the resource', async () => {
    const notify = `${bots.config.baseUrl}/bots/notify`;
    const observation = { resourceType: 'Observation', id: 'x', meta: { versionId: '1' }, status: 'final', code: { text: 'x' } };
    const wrong = await request('POST', `${notify}/news2`, observation, { authorization: 'Bearer not-the-secret' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.resourceType, 'OperationOutcome');
    const secret = { authorization: `Bearer ${SECRET}` };
    assert.equal((await request('POST', `${notify}/reminders`, observation, secret)).status, 404);
    const bare = await request('POST', `${notify}/news2`, { resourceType: 'Observation', status: 'final' }, secret);
    assert.equal(bare.status, 400);
    assert.equal(bare.body.issue[0].expression[0], 'Subscription.channel.payload');
    // HAPI's form: PUT {endpoint}/{type}/{id}; a resource the server does not hold is no run
    assert.equal((await request('PUT', `${notify}/news2/Observation/x`, observation, secret)).status, 200);
  });

  it('requests a Subscription again that the server switched off', async () => {
    const [subscription] = await subscriptions('news2');
    await fhir().update<Subscription>({ ...subscription, status: 'off' });
    const subscriber = { endpoint: `${bots.config.baseUrl}/bots/notify`, header: `Authorization: Bearer ${SECRET}` };
    const [again] = await subscribeBots(fhir(), BUILT_IN_BOTS.filter((b) => b.name === 'news2'), subscriber);
    assert.equal(again.id, subscription.id);
    await eventually(async () => ((await subscriptions('news2'))[0]?.status === 'active' ? true : undefined), 'the Subscription active again');
  });

  describe('a bot triggered by a topic', () => {
    const ADMITTED = 'https://vigil.health/fhir/SubscriptionTopic/patient-admitted';
    const runs: string[] = [];
    const admissions: Bot = {
      name: 'admissions',
      title: 'Admissions',
      trigger: { topic: ADMITTED },
      scopes: [],
      timeoutMs: 5_000,
      attempts: 1,
      defaults: {},
      async handler({ interaction, resource }) {
        runs.push(`${interaction} ${resource.resourceType}/${resource.id}/${resource.meta?.versionId}`);
        return { outcome: 'success' };
      },
    };
    let queues: QueueFactory;
    let listener: Server;
    let endpoint = '';

    // the bots' side as main.ts wires it for an external server, with this bot alone
    before(async () => {
      queues = createQueueFactory();
      const host = new BotHost({ bots: [admissions], fhir: fhir(), queue: queues.queue<BotJob>('topic-bots'), audit: () => undefined });
      host.start();
      const port = await freePort();
      endpoint = `http://127.0.0.1:${port}/bots/notify`;
      const app = express().use('/bots/notify', notifyRouter(host, [admissions], { fhirUrl: store.fhir, notifySecret: SECRET, notifyUrl: endpoint }, 1_000_000));
      listener = await new Promise<Server>((resolve) => {
        const server = app.listen(port, '127.0.0.1', () => resolve(server));
      });
    });
    after(async () => {
      await queues.close({ timeoutMs: 100 });
      await new Promise((resolve) => listener.close(resolve));
    });

    it('subscribes with a Backport IG Subscription, takes its handshake, and runs on the events of the topic', async () => {
      const [subscription] = await subscribeBots(fhir(), [admissions], { endpoint, header: `Authorization: Bearer ${SECRET}` });
      assert.equal(subscription.criteria, ADMITTED);
      assert.deepEqual(subscription.meta?.profile, ['http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription']);
      assert.equal((subscription.channel as { _payload?: { extension?: { valueCode?: string }[] } })._payload?.extension?.[0].valueCode, 'full-resource');
      // a topic-based rest-hook is active only once its endpoint took the handshake
      await eventually(async () => ((await subscriptions('admissions'))[0]?.status === 'active' ? true : undefined), 'the Subscription active');
      // the server decides what the topic matches: an Encounter becoming in-progress
      const planned = await post<Encounter>(store, { resourceType: 'Encounter', status: 'planned', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' } });
      const admitted = await fhir().update<Encounter>({ ...planned, status: 'in-progress' });
      // (a run is made on the version notified only while it is current)
      await eventually(async () => (runs.length ? true : undefined), 'the run on the admission');
      await fhir().update<Encounter>({ ...admitted, priority: { text: 'urgent' } });
      const direct = await post<Encounter>(store, { ...planned, id: undefined, meta: undefined, status: 'in-progress' });
      // notified in commit order: by the second admission's run, the later update would have run
      await eventually(async () => (runs.length >= 2 ? true : undefined), 'the run on the second admission');
      assert.deepEqual(runs, [`update Encounter/${planned.id}/2`, `create Encounter/${direct.id}/1`]);
      // and the Subscription, as wanted, is left alone
      const [again] = await subscribeBots(fhir(), [admissions], { endpoint, header: `Authorization: Bearer ${SECRET}` });
      assert.equal(again.meta?.versionId, (await subscriptions('admissions'))[0].meta?.versionId);
    });
  });

  describe('the REST client', () => {
    it('answers as the store does: conditional create, If-Match, a missing resource', async () => {
      const client = fhir();
      const device: Device = { resourceType: 'Device', identifier: [{ system: 'urn:test', value: 'rest-client' }] };
      const first = await client.createIfNoneExist(device, 'identifier=urn:test|rest-client');
      const second = await client.createIfNoneExist(device, 'identifier=urn:test|rest-client');
      assert.deepEqual([first.created, second.created, second.resource.id], [true, false, first.resource.id]);
      const updated = await client.update({ ...first.resource, status: 'active' }, { ifMatch: first.resource.meta?.versionId });
      assert.equal(updated.meta?.versionId, '2');
      await assert.rejects(client.update({ ...first.resource, status: 'inactive' }, { ifMatch: '1' }), (err: FhirRequestError) => err.status === 412);
      await assert.rejects(client.read('Device', 'no-such-device'), (err: FhirRequestError) => err.status === 404);
    });

    it('finds the newest readings of each code by searches, as $lastn does', async () => {
      const { patient } = await enrol(store, 'Lastn');
      for (const [code, value, minutes] of [['8867-4', 70, 30], ['8867-4', 80, 20], ['8867-4', 90, 10], ['9279-1', 15, 25]] as const) await post(store, vital(patient, code, value, minutes));
      const found = await fhir().lastn({ subject: `Patient/${patient}`, code: 'http://loinc.org|8867-4,http://loinc.org|9279-1', max: '2' });
      assert.deepEqual(found.map((o) => o.valueQuantity?.value), [90, 80, 15]);
    });
  });
});
