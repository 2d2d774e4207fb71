import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent, Device, Observation, Resource } from '@medplum/fhirtypes';
import { createQueueFactory } from '../../server/src/jobs/queue.ts';
import { BotHost, type BotJob, type BotQueue } from './host.ts';
import type { Bot, FhirClient } from './manifest.ts';

/** Enough of a FHIR server for the runtime: reads, searches by `_id`, creates, and conditional creates keyed by criteria. */
function memoryFhir(): FhirClient & { all: Resource[] } {
  const all: Resource[] = [];
  const keyed = new Map<string, Resource>();
  const store = <T extends Resource>(r: T): T => {
    const stored = { ...r, id: r.id ?? randomUUID(), meta: { versionId: '1' } };
    all.push(stored);
    return stored;
  };
  return {
    all,
    read: async (type, id) => {
      const found = all.find((r) => r.resourceType === type && r.id === id);
      if (!found) throw Object.assign(new Error('not found'), { status: 404 });
      return found as never;
    },
    search: async <T extends Resource>(type: T['resourceType'], params: Record<string, string | string[]>) => {
      const ids = String(params._id ?? '').split(',');
      return all.filter((r): r is T => r.resourceType === type && ids.includes(r.id as string));
    },
    async *searchPages<T extends Resource>(type: T['resourceType']) {
      // two pages, as a server with a small page size would give them
      const matches = all.filter((r): r is T => r.resourceType === type);
      yield matches.slice(0, 1);
      yield matches.slice(1);
    },
    lastn: async () => [],
    create: async (r) => store(r),
    update: async (r) => r,
    createIfNoneExist: async (r, criteria) => {
      const existing = keyed.get(criteria);
      if (existing) return { resource: existing as typeof r, created: false };
      const created = store(r);
      keyed.set(criteria, created);
      return { resource: created, created: true };
    },
  };
}

const bot = (name: string, handler: Bot['handler'], timeoutMs = 1_000): Bot => ({
  name,
  title: name,
  trigger: { resourceType: 'Observation' },
  timeoutMs,
  attempts: 1,
  defaults: {},
  handler,
});

describe('BotHost', () => {
  it('times a slow bot out, audits the failure, and runs the other bots regardless', async () => {
    const fhir = memoryFhir();
    const queues = createQueueFactory();
    const dead: string[] = [];
    const audits: AuditEvent[] = [];
    const host = new BotHost({
      fhir,
      queue: queues.queue<BotJob>('bots'),
      audit: (event) => audits.push(event),
      onError: (_err, context) => dead.push(String(context.deadLetter)),
      bots: [
        bot('slow', (event) => new Promise((_, reject) => event.signal.addEventListener('abort', () => reject(event.signal.reason))), 50),
        bot('fast', async (_event, client) => {
          await client.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'out' } });
          return { outcome: 'success', message: 'done' };
        }),
      ],
    });
    host.start();
    const trigger = await fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'in' }, subject: { reference: 'Patient/p' } });
    await host.handleChanges([{ interaction: 'create', resourceType: 'Observation', id: trigger.id as string, versionId: '1' }]);
    for (let i = 0; i < 100 && audits.length < 2; i++) await sleep(10);
    const byBot = new Map(audits.map((a) => [a.subtype?.[0].code, a]));
    assert.equal(byBot.get('slow')?.outcome, '8');
    assert.match(byBot.get('slow')?.outcomeDesc ?? '', /TimeoutError/);
    assert.equal(byBot.get('fast')?.outcome, '0');
    assert.deepEqual(byBot.get('fast')?.entity?.map((e) => e.description), ['trigger', undefined, 'created']);
    assert.deepEqual(dead, ['slow/Observation/' + trigger.id + '/1']);
    // one Device per bot, however many runs
    assert.equal(fhir.all.filter((r) => r.resourceType === 'Device').length, 2);
    await queues.close({ timeoutMs: 100 });
  });

  it('sweeps on a schedule: one run per resource found, audited only when it wrote something', async () => {
    const fhir = memoryFhir();
    const queues = createQueueFactory();
    const visited: string[] = [];
    const quiet = await fhir.create<Device>({ resourceType: 'Device', status: 'active', patient: { reference: 'Patient/p' } });
    const busy = await fhir.create<Device>({ resourceType: 'Device', status: 'active', patient: { reference: 'Patient/p' } });
    const sweeper: Bot = {
      ...bot('sweeper', async (event, client) => {
        visited.push(`${event.interaction} ${event.resource.id}`);
        if (event.resource.id === busy.id) await client.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'found' } });
        return { outcome: 'success' };
      }),
      trigger: undefined,
      schedule: { everyMs: 60_000, search: 'Device?status=active' },
    };
    const audits: AuditEvent[] = [];
    const host = new BotHost({ fhir, queue: queues.queue<BotJob>('bots'), audit: (event) => audits.push(event), bots: [sweeper] });
    host.start();
    for (let i = 0; i < 100 && visited.length < 2; i++) await sleep(10);
    await sleep(50);
    assert.deepEqual(visited.sort(), [`sweep ${quiet.id}`, `sweep ${busy.id}`].sort());
    assert.deepEqual(audits.map((a) => a.entity?.[0].what?.reference), [`Device/${busy.id}`]);
    assert.equal(audits[0].entity?.[0].detail?.find((d) => d.type === 'interaction')?.valueString, 'sweep');
    await assert.rejects(host.sweep('nobody'), /no scheduled bot named nobody/);
    await queues.close({ timeoutMs: 100 });
  });

  it('makes no job for a resource that accepts() refuses, and leaves no AuditEvent', async () => {
    const fhir = memoryFhir();
    const queues = createQueueFactory();
    const ran: string[] = [];
    const picky: Bot = {
      ...bot('picky', async (event) => (ran.push(event.resource.id as string), { outcome: 'success' })),
      trigger: { resourceType: 'Observation', accepts: async (resource) => (resource as Observation).code.text === 'wanted' },
    };
    const audits: AuditEvent[] = [];
    const enqueued: string[] = [];
    const jobs = queues.queue<BotJob>('bots');
    const queue: BotQueue = { enqueue: (data, options) => (enqueued.push(options.jobId), jobs.enqueue(data, options)), schedule: jobs.schedule.bind(jobs), process: jobs.process.bind(jobs) };
    const host = new BotHost({ fhir, queue, audit: (event) => audits.push(event), bots: [picky] });
    host.start();
    const unwanted = await fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'other' } });
    const wanted = await fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'wanted' } });
    await host.handleChanges([unwanted, wanted].map((o) => ({ interaction: 'create' as const, resourceType: 'Observation', id: o.id as string, versionId: '1' })));
    assert.deepEqual(enqueued, [`picky/Observation/${wanted.id}/1`], 'a refused resource makes no job');
    for (let i = 0; i < 100 && ran.length < 1; i++) await sleep(10);
    await sleep(50);
    assert.deepEqual(ran, [wanted.id]);
    assert.equal(audits.length, 1);
    await queues.close({ timeoutMs: 100 });
  });
});

