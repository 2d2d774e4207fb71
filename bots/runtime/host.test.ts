import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent, Observation, Resource } from '@medplum/fhirtypes';
import { createQueueFactory } from '../../server/src/jobs/queue.ts';
import { BotHost, type BotJob } from './host.ts';
import type { Bot, FhirClient } from './manifest.ts';

/** Enough of a FHIR server for the runtime: reads, creates, and conditional creates keyed by criteria. */
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
    search: async () => [],
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
    const host = new BotHost({
      fhir,
      queue: queues.queue<BotJob>('bots'),
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
    await host.handleChange({ interaction: 'create', resourceType: 'Observation', id: trigger.id as string, versionId: '1' });
    const audits = (): AuditEvent[] => fhir.all.filter((r): r is AuditEvent => r.resourceType === 'AuditEvent');
    for (let i = 0; i < 100 && audits().length < 2; i++) await sleep(10);
    const byBot = new Map(audits().map((a) => [a.subtype?.[0].code, a]));
    assert.equal(byBot.get('slow')?.outcome, '8');
    assert.match(byBot.get('slow')?.outcomeDesc ?? '', /TimeoutError/);
    assert.equal(byBot.get('fast')?.outcome, '0');
    assert.deepEqual(byBot.get('fast')?.entity?.map((e) => e.description), ['trigger', undefined, 'created']);
    assert.deepEqual(dead, ['slow/Observation/' + trigger.id + '/1']);
    // one Device per bot, however many runs
    assert.equal(fhir.all.filter((r) => r.resourceType === 'Device').length, 2);
    await queues.close({ timeoutMs: 100 });
  });
});
