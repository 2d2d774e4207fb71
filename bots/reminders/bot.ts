import type { CarePlan, CarePlanActivity, Communication, Observation } from '@medplum/fhirtypes';
import { clearAlerts, raiseAlert } from '../alerts/alerts.ts';
import { ALERT_DEFAULTS } from '../alerts/codes.ts';
import { isTimeZone } from '../calendar/zone.ts';
import { patientOf } from '../runtime/host.ts';
import { numberParameter, type Bot, type BotEvent, type BotResult, type FhirClient } from '../runtime/manifest.ts';
import { BP_PANEL, codesOf, LOINC, MEASURE_BY_LOINC } from '../vitals/codes.ts';
import { MEASURE_LABEL } from '../vitals/reading.ts';
import { parseTiming, slotState, slotsUntil, type Slot } from './slots.ts';

/** One reminder per care plan, activity and slot: `<CarePlan id>/<activity index>/<slot start>`. */
export const REMINDER_KEY = 'urn:vigil:reminder';
/** Activities in these states expect nothing. */
const INACTIVE = new Set(['cancelled', 'stopped', 'completed', 'on-hold', 'entered-in-error']);
/** Statuses of an Observation that was actually taken. */
const TAKEN = 'preliminary,final,amended,corrected';

export const remindersBot: Bot = {
  name: 'reminders',
  title: 'Vigil measurement reminders',
  schedule: { everyMs: 5 * 60_000, search: 'CarePlan?status=active' },
  // readings in each slot; reminders and alerts (Communication, Flag) to the patient and CareTeam
  scopes: ['system/Observation.s', 'system/Communication.cs', 'system/Flag.cus', 'system/CareTeam.s'],
  timeoutMs: 30_000,
  defaults: {
    graceMinutes: 60,
    missesBeforeNotice: 3,
    timeZone: 'UTC',
    ...ALERT_DEFAULTS,
    // a slot is a slot's worth of evidence: the first measurement on time ends the notice
    clearAfterMinutes: 0,
  },

  async handler(event, fhir): Promise<BotResult> {
    const plan = event.resource as CarePlan;
    const patientId = patientOf(plan);
    if (!patientId) return { outcome: 'skipped', message: 'the CarePlan is not about a Patient' };
    const timeZone = String(event.parameters.timeZone);
    if (!isTimeZone(timeZone)) return { outcome: 'rejected', message: `timeZone "${timeZone}" is not an IANA time zone` };
    const notes: string[] = [];
    for (const [index, activity] of (plan.activity ?? []).entries()) {
      const note = await followActivity(fhir, event, plan, patientId, index, activity, timeZone);
      if (note) notes.push(`activity ${index}: ${note}`);
    }
    return { outcome: 'success', message: notes.join('; ') || 'no scheduled measurements' };
  },
};

async function followActivity(
  fhir: FhirClient,
  event: BotEvent,
  plan: CarePlan,
  patientId: string,
  index: number,
  activity: CarePlanActivity,
  timeZone: string,
): Promise<string | undefined> {
  const detail = activity.detail;
  if (!detail?.scheduledTiming || INACTIVE.has(detail.status)) return undefined;
  const code = detail.code?.coding?.find((c) => c.system === LOINC && c.code)?.code;
  if (!code) return 'no LOINC code';
  const timing = parseTiming(detail.scheduledTiming);
  if ('unsupported' in timing) return `timing not understood: ${timing.unsupported}`;
  const now = Date.now();
  const graceMs = numberParameter(event.parameters, 'graceMinutes') * 60_000;
  const misses = numberParameter(event.parameters, 'missesBeforeNotice');
  const start = Date.parse(plan.period?.start ?? plan.created ?? plan.meta?.lastUpdated ?? '');
  const end = plan.period?.end ? Date.parse(plan.period.end) : Infinity;
  const lookbackDays = (timing.kind === 'times' && !timing.days ? 1 : 7) * (misses + 2);
  const slots = slotsUntil(timing, { start: Number.isNaN(start) ? now : start, now, timeZone, graceMs, lookbackDays }).filter((s) => s.until <= end);
  const ended = slots.filter((s) => s.until <= now).slice(-misses);
  const current = slots.filter((s) => s.until > now);
  const measure = MEASURE_BY_LOINC.get(code);
  const what = detail.code?.text ?? (code === BP_PANEL ? 'blood pressure' : measure ? MEASURE_LABEL[measure] : code);
  // a plan for the panel is met by either half, a plan for one half by the panel
  const codes = code === BP_PANEL ? codesOf('systolic') : measure ? codesOf(measure) : [code];
  const count = (slot: Slot) => readingsIn(fhir, patientId, codes, slot.from, Math.min(now, slot.until), slot.count);

  let reminded = 0;
  for (const slot of current) {
    if (now < slot.remindAt) continue;
    const have = await count(slot);
    if (slotState(slot, have, now) !== 'remind') continue;
    await fhir.createIfNoneExist(reminder(plan, patientId, index, slot, what, have, event), `identifier=${encodeURIComponent(`${REMINDER_KEY}|${reminderKey(plan, index, slot)}`)}`);
    reminded++;
  }
  const states = await Promise.all(ended.map(async (slot) => slotState(slot, await count(slot), now)));
  const rule = `missed-measurement-${code}`;
  const last = ended.at(-1);
  let notice = '';
  if (last && ended.length >= misses && states.every((s) => s === 'missed')) {
    const alert = await raiseAlert(fhir, event, {
      patientId,
      rule,
      code: 'missed-measurement',
      label: `Missed measurements: ${what}`,
      priority: 'routine',
      evidence: [{ reference: `CarePlan/${plan.id}` }],
      text: `${ended.length} planned ${what} measurements in a row did not arrive: ${ended.map((s) => s.label).join(', ')} (${timeZone})`,
      at: new Date(last.until).toISOString(),
    });
    notice = `, care team notice ${alert.action} (${alert.notice})`;
  } else if (last && states.at(-1) === 'taken') {
    await clearAlerts(fhir, event, patientId, [rule], new Date(last.until).toISOString());
  }
  const missed = states.filter((s) => s === 'missed').length;
  return `${code}: ${missed} of the last ${ended.length} missed, ${reminded} reminder(s) due${notice}`;
}

/** How many of the patient's readings of `codes` were taken in [from, until), counting up to `enough`. */
async function readingsIn(fhir: FhirClient, patientId: string, codes: string[], from: number, until: number, enough: number): Promise<number> {
  const found = await fhir.search<Observation>('Observation', {
    subject: `Patient/${patientId}`,
    code: codes.map((c) => `${LOINC}|${c}`).join(','),
    date: [`ge${new Date(from).toISOString()}`, `lt${new Date(until).toISOString()}`],
    status: TAKEN,
    _count: String(enough),
    _elements: 'id',
  });
  return found.length;
}

const reminderKey = (plan: CarePlan, index: number, slot: Slot): string => `${plan.id}/${index}/${new Date(slot.from).toISOString()}`;

function reminder(plan: CarePlan, patientId: string, index: number, slot: Slot, what: string, have: number, event: BotEvent): Communication {
  const patient = { reference: `Patient/${patientId}` };
  const progress = slot.count > 1 ? ` (${have} of ${slot.count} so far)` : '';
  return {
    resourceType: 'Communication',
    identifier: [{ system: REMINDER_KEY, value: reminderKey(plan, index, slot) }],
    basedOn: [{ reference: `CarePlan/${plan.id}` }],
    status: 'completed',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/communication-category', code: 'reminder', display: 'Reminder' }] }],
    priority: 'routine',
    subject: patient,
    recipient: [patient],
    sender: event.agent,
    sent: new Date().toISOString(),
    about: [{ reference: `CarePlan/${plan.id}` }],
    payload: [{ contentString: `Reminder: your ${what} measurement planned for ${slot.label} has not arrived yet${progress}. Please take it now.` }],
  };
}
