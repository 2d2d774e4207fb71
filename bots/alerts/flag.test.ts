import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Flag } from '@medplum/fhirtypes';
import { evidenceOf, flagPriority, isSnoozed, lastBreach, newFlag, SNOOZE_URL, withEvidence, type AlertSpec } from './flag.ts';

const AGENT = { reference: 'Device/bot' };
const spec = (extra: Partial<AlertSpec> = {}): AlertSpec => ({
  patientId: 'p1',
  rule: 'pulse-high',
  code: 'pulse-high',
  priority: 'routine',
  evidence: [{ reference: 'Observation/o1' }],
  text: 'Pulse 118 /min',
  at: '2026-03-10T08:00:00Z',
  ...extra,
});
const snoozed = (flag: Flag, until: string): Flag => ({ ...flag, extension: [...(flag.extension ?? []), { url: SNOOZE_URL, valueDateTime: until }] });
const NOW = Date.parse('2026-03-10T09:00:00Z');

describe('alert Flags', () => {
  it('are clinical unless technical, with a label and the rule\'s own codes beside Vigil\'s', () => {
    const plain = newFlag(spec(), AGENT);
    assert.equal(plain.category?.[0].coding?.[0].code, 'clinical');
    assert.deepEqual(plain.code, { coding: [{ system: 'https://vigil.health/fhir/CodeSystem/alert', code: 'pulse-high', display: 'High pulse rate' }], text: 'High pulse rate' });
    const custom = newFlag(spec({ code: 'custom-rule', label: 'Heart rate jump', codings: [{ system: 'urn:org', code: 'jump' }], category: 'administrative' }), AGENT);
    assert.deepEqual(custom.category?.[0].coding?.[0], { system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'admin', display: 'Administrative' });
    assert.deepEqual(custom.code?.coding?.map((c) => c.code), ['custom-rule', 'jump']);
    assert.equal(custom.code?.text, 'Heart rate jump');
  });

  it('are snoozed until the time a clinician set, not after, and not on a bad date', () => {
    const flag = newFlag(spec(), AGENT);
    assert.equal(isSnoozed(flag, NOW), false);
    assert.equal(isSnoozed(snoozed(flag, '2026-03-10T10:00:00Z'), NOW), true);
    assert.equal(isSnoozed(snoozed(flag, '2026-03-10T09:00:00Z'), NOW), false);
    assert.equal(isSnoozed(snoozed(flag, 'tomorrow'), NOW), false);
  });

  it('keep a snooze through new evidence at the same severity, and drop it on escalation', () => {
    const flag = snoozed(newFlag(spec(), AGENT), '2026-03-10T10:00:00Z');
    const same = withEvidence(flag, spec({ evidence: [{ reference: 'Observation/o2' }], at: '2026-03-10T08:05:00Z' }));
    assert.equal(isSnoozed(same, NOW), true);
    assert.ok(same.extension?.some((e) => e.valueReference?.reference === 'Observation/o2'));
    const worse = withEvidence(flag, spec({ priority: 'urgent', evidence: [{ reference: 'Observation/o3' }] }));
    assert.equal(flagPriority(worse), 'urgent');
    assert.equal(isSnoozed(worse, NOW), false);
    assert.equal(worse.extension?.some((e) => e.url === SNOOZE_URL), false);
  });

  it('take evidence at the same priority once 5 minutes of readings have passed, escalations at once, older readings never', () => {
    const flag = newFlag(spec(), AGENT);
    assert.equal(lastBreach(flag), Date.parse('2026-03-10T08:00:00Z'));
    const soon = spec({ evidence: [{ reference: 'Observation/o2' }], at: '2026-03-10T08:04:59Z' });
    assert.equal(withEvidence(flag, soon), flag, 'a streaming device does not rewrite the Flag on every reading');
    const later = withEvidence(flag, { ...soon, at: '2026-03-10T08:05:00Z' });
    assert.deepEqual(evidenceOf(later), ['Observation/o2']);
    assert.equal(lastBreach(later), Date.parse('2026-03-10T08:05:00Z'));
    assert.equal(withEvidence(later, spec({ evidence: [{ reference: 'Observation/o0' }], at: '2026-03-10T07:00:00Z' })), later);
    const worse = withEvidence(later, spec({ priority: 'urgent', evidence: [{ reference: 'Observation/o3' }], at: '2026-03-10T08:01:00Z' }));
    assert.deepEqual([flagPriority(worse), evidenceOf(worse), lastBreach(worse)], ['urgent', ['Observation/o3'], Date.parse('2026-03-10T08:05:00Z')]);
  });
});
