import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Bundle, BundleEntry, ParametersParameter } from '@medplum/fhirtypes';
import type { Bot } from './manifest.ts';
import { botSubscription, notifiedChanges } from './subscriber.ts';

const BASE = 'https://fhir.example.org/r4';
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';

/** A Backport IG notification (R4 flavour) as a server sends it: the status Parameters, then the entries. */
function notification(type: string, focus: (string | undefined)[], entries: BundleEntry[] = []): Bundle {
  const events: ParametersParameter[] = focus.map((reference, i) => ({
    name: 'notification-event',
    part: [{ name: 'event-number', valueString: String(i + 1) }, ...(reference ? [{ name: 'focus', valueReference: { reference } }] : [])],
  }));
  return {
    resourceType: 'Bundle',
    type: 'history',
    entry: [
      { fullUrl: 'urn:uuid:status', resource: { resourceType: 'Parameters', parameter: [{ name: 'type', valueCode: type }, ...events] } },
      ...entries,
    ],
  };
}

const entry = (id: string, versionId: string, method: 'POST' | 'PUT' | 'DELETE'): BundleEntry => ({
  fullUrl: `${BASE}/Encounter/${id}`,
  resource: { resourceType: 'Encounter', id, meta: { versionId }, status: 'in-progress', class: { code: 'IMP' } },
  request: { method, url: method === 'POST' ? 'Encounter' : `Encounter/${id}` },
});

describe('topic-based notifications to a bot', () => {
  it('announces no change in a handshake or heartbeat', () => {
    assert.deepEqual(notifiedChanges(notification('handshake', [])), []);
    assert.deepEqual(notifiedChanges(notification('heartbeat', [])), []);
  });

  it("announces an event notification's focus entries, their interaction from the request; not context, not deletions", () => {
    const bundle = notification('event-notification', [`${BASE}/Encounter/a`, 'Encounter/b/_history/3', `${BASE}/Encounter/c`], [
      entry('a', '1', 'POST'),
      entry('b', '3', 'PUT'),
      entry('c', '2', 'DELETE'),
      // additional context, not a focus
      { fullUrl: `${BASE}/Patient/p`, resource: { resourceType: 'Patient', id: 'p', meta: { versionId: '1' } } },
    ]);
    assert.deepEqual(notifiedChanges(bundle), [
      { interaction: 'create', resourceType: 'Encounter', id: 'a', versionId: '1' },
      { interaction: 'update', resourceType: 'Encounter', id: 'b', versionId: '3' },
    ]);
  });

  it('refuses what is no notification, and an event without its focus resource', () => {
    assert.equal(notifiedChanges({ resourceType: 'Encounter', id: 'a', meta: { versionId: '1' } }), undefined);
    assert.equal(notifiedChanges({ ...notification('event-notification', []), type: 'collection' }), undefined);
    // empty content: an event with no focus
    assert.equal(notifiedChanges(notification('event-notification', [undefined])), undefined);
    // id-only content: the focus entry without its resource
    assert.equal(notifiedChanges(notification('event-notification', [`${BASE}/Encounter/a`], [{ fullUrl: `${BASE}/Encounter/a`, request: { method: 'POST', url: 'Encounter' } }])), undefined);
  });

  it('subscribes a topic bot with a Backport IG Subscription: the topic as criteria, full resources', () => {
    const bot: Bot = { name: 'admissions', title: 'Admissions', trigger: { topic: 'https://example.org/SubscriptionTopic/admitted' }, scopes: [], timeoutMs: 1, defaults: {}, handler: async () => ({ outcome: 'success' }) };
    assert.deepEqual(botSubscription(bot, { endpoint: 'https://vigil.example.org/bots/notify', header: 'Authorization: Bearer s' }), {
      resourceType: 'Subscription',
      meta: { profile: [`${BACKPORT}backport-subscription`], tag: [{ system: 'https://vigil.health/fhir/CodeSystem/bot', code: 'admissions' }] },
      status: 'requested',
      reason: 'Admissions: Vigil runs the bot on each match',
      criteria: 'https://example.org/SubscriptionTopic/admitted',
      channel: {
        type: 'rest-hook',
        endpoint: 'https://vigil.example.org/bots/notify/admissions',
        payload: 'application/fhir+json',
        header: ['Authorization: Bearer s'],
        _payload: { extension: [{ url: `${BACKPORT}backport-payload-content`, valueCode: 'full-resource' }] },
      },
    });
  });
});
