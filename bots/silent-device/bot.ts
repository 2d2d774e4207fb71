import type { Device, Observation } from '@medplum/fhirtypes';
import { clearAlerts, raiseAlert } from '../alerts/alerts.ts';
import { ALERT_DEFAULTS } from '../alerts/codes.ts';
import { patientOf } from '../runtime/host.ts';
import { numberParameter, type Bot, type BotResult } from '../runtime/manifest.ts';
import { effectiveTime } from '../vitals/normalise.ts';
import { deviceSilence } from './silence.ts';

const MIN = 60_000;
/** The device's newest reports considered: enough to see how often it reports. */
const RECENT = '20';

/**
 * Silent device: every 5 minutes each active Device bound to a patient is checked; one that
 * reported regularly and has been quiet for `silentAfterMinutes` raises a technical alert
 * (administrative Flag, Communication to the care team), ended by the first sweep that sees it
 * report again.
 */
export const silentDeviceBot: Bot = {
  name: 'silent-device',
  title: 'Vigil silent device',
  schedule: { everyMs: 5 * MIN, search: 'Device?status=active' },
  // the device's reports; alerts to the CareTeam
  scopes: ['system/Observation.s', 'system/Flag.cus', 'system/Communication.cs', 'system/CareTeam.s'],
  timeoutMs: 10_000,
  defaults: { silentAfterMinutes: 360, minReports: 4, ...ALERT_DEFAULTS, clearAfterMinutes: 0 },

  async handler(event, fhir): Promise<BotResult> {
    const device = event.resource as Device;
    const patientId = patientOf(device);
    if (!patientId) return { outcome: 'skipped', message: 'the Device is not bound to a Patient' };
    const reports = await fhir.search<Observation>('Observation', { device: `Device/${device.id}`, _sort: '-date', _count: RECENT });
    const taken = reports.filter((o) => o.status !== 'entered-in-error').map((o) => ({ id: o.id as string, time: effectiveTime(o) }));
    const times = taken.flatMap((r) => (typeof r.time === 'number' ? [r.time] : []));
    const silentAfterMs = numberParameter(event.parameters, 'silentAfterMinutes') * MIN;
    const silence = deviceSilence(times, Date.now(), { silentAfterMs, minReports: numberParameter(event.parameters, 'minReports') });
    const rule = `silent-device-${device.id}`;
    if (silence.kind === 'reporting') {
      await clearAlerts(fhir, event, patientId, [rule], new Date(silence.last).toISOString());
      return { outcome: 'success', message: 'reporting' };
    }
    if (silence.kind !== 'silent') return { outcome: 'skipped', message: silence.kind === 'irregular' ? 'does not report regularly' : 'has never reported' };
    const name = device.deviceName?.[0]?.name ?? device.identifier?.[0]?.value ?? `Device/${device.id}`;
    const lastReport = taken.find((r) => r.time === silence.last);
    const alert = await raiseAlert(fhir, event, {
      patientId,
      rule,
      code: 'silent-device',
      label: `Silent device: ${name}`,
      category: 'administrative',
      priority: 'routine',
      evidence: [{ reference: `Device/${device.id}` }, ...(lastReport ? [{ reference: `Observation/${lastReport.id}` }] : [])],
      text: `${name} has sent nothing since ${new Date(silence.last).toISOString()} (${hours(Date.now() - silence.last)}); it usually reports every ${duration(silence.typicalGapMs)}. Check that it is charged, worn and connected.`,
      at: new Date(silence.since).toISOString(),
    });
    return { outcome: 'success', message: `silent: alert ${alert.action}, care team ${alert.notice}` };
  },
};

const hours = (ms: number): string => `${(ms / (60 * MIN)).toFixed(1)} h ago`;
const duration = (ms: number): string => (ms < MIN ? `${Math.round(ms / 1000)} s` : ms < 60 * MIN ? `${Math.round(ms / MIN)} min` : `${(ms / (60 * MIN)).toFixed(1)} h`);
