import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Observation } from '@medplum/fhirtypes';
import { isMonitored, MONITORING_HORIZON_MS } from './recency.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const at = (ms: number, extra: Partial<Observation> = {}): Observation => ({ resourceType: 'Observation', status: 'final', code: {}, effectiveDateTime: new Date(ms).toISOString(), ...extra });

test('isMonitored: recent readings, not history', () => {
  assert.equal(isMonitored(at(NOW - 60_000), NOW), true);
  assert.equal(isMonitored(at(NOW - MONITORING_HORIZON_MS), NOW), true);
  assert.equal(isMonitored(at(NOW - MONITORING_HORIZON_MS - 1), NOW), false);
  assert.equal(isMonitored(at(NOW - 3 * 365 * 86_400_000), NOW), false);
  // an error correction always reaches the bots, so the alerts it caused are retracted
  assert.equal(isMonitored(at(NOW - 30 * 86_400_000, { status: 'entered-in-error' }), NOW), true);
  // no usable time: the bot refuses it itself, with an AuditEvent
  assert.equal(isMonitored({ resourceType: 'Observation', status: 'final', code: {} }, NOW), true);
  assert.equal(isMonitored(at(NOW, { effectiveDateTime: '2026-02-01' }), NOW), true);
});
