import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deviceSilence } from './silence.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const NOW = Date.parse('2026-03-10T12:00:00Z');
const options = { silentAfterMs: 6 * HOUR, minReports: 4 };
/** `n` reports `gap` apart, the last `ago` before now. */
const reports = (n: number, gap: number, ago: number) => Array.from({ length: n }, (_, i) => NOW - ago - i * gap);

describe('deviceSilence', () => {
  it('a wearable quiet for 6 hours is silent; for less it is reporting', () => {
    assert.deepEqual(deviceSilence(reports(20, MIN, 6 * HOUR), NOW, options), {
      kind: 'silent', last: NOW - 6 * HOUR, since: NOW, typicalGapMs: MIN,
    });
    assert.deepEqual(deviceSilence(reports(20, MIN, 6 * HOUR - 1), NOW, options), { kind: 'reporting', last: NOW - 6 * HOUR + 1 });
  });

  it('a device that reports twice a day is not expected every 6 hours', () => {
    assert.equal(deviceSilence(reports(20, 12 * HOUR, 7 * HOUR), NOW, options).kind, 'irregular');
  });

  it('needs the usual gap under a quarter of the silence: 1.5 h watched, 1.6 h not', () => {
    assert.equal(deviceSilence(reports(10, 90 * MIN, 7 * HOUR), NOW, options).kind, 'silent');
    assert.equal(deviceSilence(reports(10, 96 * MIN, 7 * HOUR), NOW, options).kind, 'irregular');
  });

  it('needs enough reports in the day before the last, each time counted once', () => {
    assert.equal(deviceSilence(reports(3, MIN, 7 * HOUR), NOW, options).kind, 'irregular');
    assert.equal(deviceSilence([...reports(3, MIN, 7 * HOUR), NOW - 7 * HOUR], NOW, options).kind, 'irregular');
    // reports older than a day before the last do not make it regular
    assert.equal(deviceSilence([...reports(2, MIN, 7 * HOUR), ...reports(10, MIN, 40 * HOUR)], NOW, options).kind, 'irregular');
    assert.equal(deviceSilence(reports(4, MIN, 7 * HOUR), NOW, options).kind, 'silent');
  });

  it('a device that never reported is not silent, and a clock ahead of ours is reporting', () => {
    assert.deepEqual(deviceSilence([], NOW, options), { kind: 'never-reported' });
    assert.equal(deviceSilence([NOW + HOUR], NOW, options).kind, 'reporting');
  });
});
