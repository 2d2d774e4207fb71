import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Encounter, Observation, Resource } from '@medplum/fhirtypes';
import { BotHost, type BotJob } from '../../../bots/runtime/host.ts';
import type { Bot } from '../../../bots/runtime/manifest.ts';
import { outboxFeed, storeClient } from '../../src/bots.ts';
import { createQueueFactory, type JobQueue, type QueueFactory } from '../../src/jobs/queue.ts';
import type { ChangeBatch } from '../../src/subscriptions/outbox.ts';
import { useServer } from '../support.ts';
import { eventually } from './helpers.ts';

const TOPIC = 'https://vigil.health/fhir/SubscriptionTopic/';

/** A bot that notes each run: bot, interaction and the version it ran on. */
function topicBot(name: string, topic: string, runs: string[]): Bot {
  return {
    name,
    title: name,
    trigger: { topic },
    scopes: [],
    timeoutMs: 5_000,
    attempts: 1,
    defaults: {},
    async handler({ interaction, resource }) {
      runs.push(`${name} ${interaction} ${resource.resourceType}/${resource.id}/${resource.meta?.versionId}`);
      return { outcome: 'success' };
    },
  };
}

const encounter = (status: Encounter['status']): Encounter => ({
  resourceType: 'Encounter',
  status,
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
});

const observation = (category: string): Observation => ({
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});

/**
 * Bots whose trigger names one of Vigil's SubscriptionTopics, fed by the outbox as Vigil's bots are
 * (`outboxFeed`): they run on what the topic's triggers match, as a subscription to it is notified.
 */
describe("bots triggered by a topic on Vigil's own store", () => {
  const server = useServer('pglite', { VIGIL_BOTS: 'off' });
  const runs: string[] = [];
  let queues: QueueFactory;
  let bots: JobQueue<BotJob>;
  let feed: JobQueue<ChangeBatch>;

  before(() => {
    queues = createQueueFactory();
    bots = queues.queue<BotJob>('topic-bots');
    const host = new BotHost({
      bots: [topicBot('admissions', `${TOPIC}patient-admitted`, runs), topicBot('vitals', `${TOPIC}new-vital-sign`, runs)],
      fhir: storeClient(server.vigil.repo),
      queue: bots,
      audit: () => undefined,
    });
    host.start();
    feed = outboxFeed(host, queues);
  });
  after(() => queues.close({ timeoutMs: 100 }));

  /** Writes through the store, hands the feed the change as the outbox drain would, and waits for the runs it makes. */
  const commit = async <T extends Resource>(write: () => Promise<{ resource: Resource; created: boolean }>): Promise<T> => {
    const { resource, created } = await write();
    const versionId = Number(resource.meta?.versionId);
    await feed.enqueue({ changes: [{ interaction: created ? 'create' : 'update', resourceType: resource.resourceType, id: resource.id as string, versionId }] });
    await eventually(async () => ((await feed.pending()) + (await bots.pending()) === 0 ? true : undefined), 'the runs');
    return resource as T;
  };
  const create = <T extends Resource>(resource: T) => commit<T>(() => server.vigil.repo.create(resource));
  const update = <T extends Resource>(resource: T) => commit<T>(() => server.vigil.repo.update(resource));

  it("runs on the changes the topic's FHIRPath criteria match, over %current and %previous", async () => {
    runs.length = 0;
    const admitted = await create(encounter('in-progress'));
    const planned = await create(encounter('planned'));
    const arrived = await update({ ...planned, status: 'in-progress' });
    // still in progress: no new admission
    await update({ ...arrived, status: 'in-progress', priority: { text: 'urgent' } });
    assert.deepEqual(runs, [`admissions create Encounter/${admitted.id}/1`, `admissions update Encounter/${planned.id}/2`]);
  });

  it("runs on the changes the topic's query matches, for the interactions it names", async () => {
    runs.length = 0;
    const vital = await create(observation('vital-signs'));
    // new-vital-sign is about creates only, and vital signs only
    await update({ ...vital, valueQuantity: { value: 75, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' } });
    await create(observation('laboratory'));
    assert.deepEqual(runs, [`vitals create Observation/${vital.id}/1`]);
  });
});
