import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent, Device, Flag, Observation, Resource } from '@medplum/fhirtypes';
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
    vread: async (type, id, versionId) => {
      const found = all.find((r) => r.resourceType === type && r.id === id && r.meta?.versionId === versionId);
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
  scopes: ['system/Observation.c'],
  timeoutMs,
  attempts: 1,
  defaults: {},
  handler,
});

/** A started host with these bots, on an in-memory store, handed the create of one Observation. */
async function runOnObservation(bots: Bot[]) {
  const fhir = memoryFhir();
  const queues = createQueueFactory();
  const dead: string[] = [];
  const audits: AuditEvent[] = [];
  const host = new BotHost({
    fhir,
    queue: queues.queue<BotJob>('bots'),
    audit: (event) => audits.push(event),
    onError: (_err, context) => dead.push(String(context.deadLetter)),
    bots,
  });
  host.start();
  const trigger = await fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'in' }, subject: { reference: 'Patient/p' } });
  await host.handleChanges([{ interaction: 'create', resourceType: 'Observation', id: trigger.id as string, versionId: '1' }]);
  return { fhir, queues, dead, audits, trigger };
}

describe('BotHost', () => {
  it('times a slow bot out, audits the failure, and runs the other bots regardless', async () => {
    const { fhir, queues, dead, audits, trigger } = await runOnObservation([
      bot('slow', (event) => new Promise((_, reject) => event.signal.addEventListener('abort', () => reject(event.signal.reason))), 50),
      bot('fast', async (_event, client) => {
        await client.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'out' } });
        return { outcome: 'success', message: 'done' };
      }),
    ]);
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

  it('fails a run that goes beyond its scopes: audited, dead-lettered, nothing written', async () => {
    const { fhir, queues, dead, audits, trigger } = await runOnObservation([
      bot('overreaching', async (_event, client) => {
        await client.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: 'allowed' } });
        await client.create<Flag>({ resourceType: 'Flag', status: 'active', code: { text: 'not allowed' }, subject: { reference: 'Patient/p' } });
        return { outcome: 'success' };
      }),
    ]);
    for (let i = 0; i < 100 && audits.length < 1; i++) await sleep(10);
    assert.equal(audits[0]?.outcome, '8');
    assert.match(audits[0]?.outcomeDesc ?? '', /bot overreaching may not create Flag: its scopes are system\/Observation\.c/);
    assert.deepEqual(dead, ['overreaching/Observation/' + trigger.id + '/1']);
    assert.equal(fhir.all.filter((r) => r.resourceType === 'Flag').length, 0);
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

  it('checks no further changes while maxPendingRuns runs are pending, and catches up once they ran', async () => {
    const fhir = memoryFhir();
    const queues = createQueueFactory();
    const jobs = queues.queue<BotJob>('bots');
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const ran: string[] = [];
    let most = 0;
    const host = new BotHost({
      fhir,
      queue: jobs,
      audit: () => {},
      maxPendingRuns: 3,
      concurrency: 1,
      bots: [bot('held', async (event) => {
        most = Math.max(most, await jobs.pending());
        await gate;
        ran.push(event.resource.id as string);
        return { outcome: 'success' };
      })],
    });
    host.start();
    const readings = [];
    for (let i = 0; i < 250; i++) readings.push(await fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text: `r${i}` } }));
    const handled = host.handleChanges(readings.map((o) => ({ interaction: 'create' as const, resourceType: 'Observation', id: o.id as string, versionId: '1' })));
    await sleep(300);
    // the first page of 100 changes went in, the rest wait for room
    assert.equal(await jobs.pending(), 100);
    open();
    await handled;
    for (let i = 0; i < 200 && ran.length < 250; i++) await sleep(10);
    assert.equal(ran.length, 250);
    assert.ok(most < 3 + 100, `at most a page over the limit pending, saw ${most}`);
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
    const queue: BotQueue = { enqueue: (data, options) => (enqueued.push(options.jobId), jobs.enqueue(data, options)), schedule: jobs.schedule.bind(jobs), process: jobs.process.bind(jobs), pending: jobs.pending.bind(jobs) };
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

  it("runs a topic's bot on what the feed's topics match, and on nothing from a feed without them", async () => {
    const fhir = memoryFhir();
    const queues = createQueueFactory();
    const enqueued: string[] = [];
    const jobs = queues.queue<BotJob>('bots');
    const queue: BotQueue = { enqueue: (data, options) => (enqueued.push(options.jobId), jobs.enqueue(data, options)), schedule: jobs.schedule.bind(jobs), process: jobs.process.bind(jobs), pending: jobs.pending.bind(jobs) };
    const topical: Bot = { ...bot('topical', async () => ({ outcome: 'success' })), trigger: { topic: 'https://example.org/topic' } };
    const host = new BotHost({ fhir, queue, audit: () => {}, bots: [topical] });
    const observation = (text: string) => fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text } });
    const [a, b, c] = [await observation('a'), await observation('b'), await observation('c')];
    const changes = [a, b, c].map((o) => ({ interaction: 'create' as const, resourceType: 'Observation', id: o.id as string, versionId: '1' }));
    await host.handleChanges(changes);
    assert.deepEqual(enqueued, []);
    const asked: string[] = [];
    await host.handleChanges(changes, {
      topics: {
        // c is out of the topic's reach: never read, never asked about
        concerns: (topic, change) => topic === 'https://example.org/topic' && change.id !== c.id,
        matching: async (_topic, changed) => {
          asked.push(...changed.map(({ resource }) => (resource as Observation).code.text as string));
          return new Set([b.id as string]);
        },
      },
    });
    assert.deepEqual(asked, ['a', 'b']);
    assert.deepEqual(enqueued, [`topical/Observation/${b.id}/1`]);
    await queues.close({ timeoutMs: 100 });
  });

  it('coalesces queued runs of a state: the first to start runs on the newest trigger, the others are audited as covered', async () => {
    const fhir = memoryFhir();
    const queues = createQueueFactory();
    const ran: string[] = [];
    const audits: AuditEvent[] = [];
    const t0 = Date.parse('2026-11-27T10:00:00Z');
    const assessor: Bot = {
      ...bot('assessor', async (event) => (ran.push((event.resource as Observation).code.text as string), { outcome: 'success' })),
      coalesce: (resource) => {
        const o = resource as Observation;
        return { key: o.subject?.reference as string, at: Date.parse(o.effectiveDateTime as string) };
      },
    };
    const host = new BotHost({ fhir, queue: queues.queue<BotJob>('bots'), audit: (event) => audits.push(event), bots: [assessor] });
    const reading = (text: string, patient: string, offsetMs: number) =>
      fhir.create<Observation>({ resourceType: 'Observation', status: 'final', code: { text }, subject: { reference: `Patient/${patient}` }, effectiveDateTime: new Date(t0 + offsetMs).toISOString() });
    const changes = async (...observations: Observation[]) =>
      host.handleChanges(observations.map((o) => ({ interaction: 'create' as const, resourceType: 'Observation', id: o.id as string, versionId: '1' })));
    // queued while no worker runs: p1 and p2 are followed by p3; q1 is another patient; p0 is a
    // late reading, older than p3, and p-old more than five minutes older: both are assessed
    const [p1, p2, q1, p3, p0, pOld] = [
      await reading('p1', 'p', 0), await reading('p2', 'p', 1_000), await reading('q1', 'q', 0),
      await reading('p3', 'p', 2_000), await reading('p0', 'p', -1_000), await reading('p-old', 'p', -10 * 60_000),
    ];
    await changes(p1, p2, q1, p3, p0, pOld);
    host.start();
    for (let i = 0; i < 100 && audits.length < 6; i++) await sleep(10);
    assert.deepEqual(ran.sort(), ['p-old', 'p0', 'p3', 'q1']);
    // the first of p's queued runs to start takes the newest over; the others say who assesses them
    const said = (o: Observation) => audits.find((a) => a.entity?.[0].what?.reference === `Observation/${o.id}`)?.outcomeDesc;
    assert.match(said(p1) ?? '', new RegExp(`^run on the newer Observation/${p3.id}`));
    assert.match(said(p2) ?? '', new RegExp(`^left to the run on Observation/${p3.id}`));
    assert.match(said(p3) ?? '', new RegExp(`^assessed by the run on Observation/${p1.id}`));
    for (const made of [q1, p0, pOld]) assert.equal(said(made), undefined);
    assert.equal(audits.length, 6);
    assert.equal(audits.find((a) => a.entity?.[0].what?.reference === `Observation/${p1.id}`)?.entity?.[1].what?.reference, 'Patient/p');

    // once those ran, a new reading is assessed: nothing remembered holds it back
    await changes(await reading('p4', 'p', 3_000));
    for (let i = 0; i < 100 && ran.length < 5; i++) await sleep(10);
    assert.deepEqual(ran.slice(4), ['p4']);
    await queues.close({ timeoutMs: 100 });
  });
});
