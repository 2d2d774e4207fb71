import type { Observation, Patient, Reference } from '@medplum/fhirtypes';
import { clearAlerts, raiseAlert, retractAlerts } from '../alerts/alerts.ts';
import { ALERT_DEFAULTS } from '../alerts/codes.ts';
import { addDays, dayBounds, dayOf, isTimeZone } from '../calendar/zone.ts';
import { patientOf } from '../runtime/host.ts';
import { numberParameter, type Bot, type BotEvent, type BotResult, type FhirClient, type Parameters } from '../runtime/manifest.ts';
import { codesOf, LOINC } from '../vitals/codes.ts';
import { effectiveTime, normaliseObservation } from '../vitals/normalise.ts';
import type { QuantityReading } from '../vitals/reading.ts';
import { assessBaseline, BASELINE_DEFAULTS, BASELINE_MEASURES, METHODS, type BaselineMeasure, type BaselineOptions, type DayValue } from './assess.ts';
import { dailyCodes, dailyKey, dailyObservation, DAILY_KEY, readDaily, summariseDays } from './daily.ts';

const HOUR = 3_600_000;
const PAGE = '1000';

/** The readings daily values are made of. */
const READING_CODES = [...new Set(BASELINE_MEASURES.flatMap(codesOf))].map((c) => `${LOINC}|${c}`);

/**
 * Personal baseline (bots/README.md): every hour, for each patient, the days that ended since the
 * last sweep become daily values (stored as Observations), and the newest day of each measure is
 * scored against the patient's own 28 days before it. A reading entered in error afterwards
 * corrects the day it went into (`correct`).
 */
export const baselineBot: Bot = {
  name: 'baseline',
  title: 'Vigil personal baseline',
  schedule: { everyMs: HOUR, search: 'Patient?active:not=false' },
  trigger: { resourceType: 'Observation', criteria: `Observation?status=entered-in-error&code=${READING_CODES.join(',')}`, interactions: ['update'] },
  // The first sweep of a patient with weeks of wearable data reads them all once.
  // readings and its daily summaries (Observation); alerts, and retractions when a summary changes
  scopes: ['system/Observation.cus', 'system/Flag.cus', 'system/Communication.cus', 'system/CareTeam.s'],
  timeoutMs: 120_000,
  defaults: {
    ...BASELINE_DEFAULTS,
    timeZone: 'UTC',
    settleHours: 2,
    ...ALERT_DEFAULTS,
    // A day is a day's worth of evidence: the first clear day ends the Flag.
    clearAfterMinutes: 0,
  },

  async handler(event, fhir): Promise<BotResult> {
    const timeZone = String(event.parameters.timeZone);
    if (!isTimeZone(timeZone)) return { outcome: 'rejected', message: `timeZone "${timeZone}" is not an IANA time zone` };
    if (event.resource.resourceType === 'Observation') return correct(fhir, event, event.resource as Observation, timeZone);
    const patient = event.resource as Patient;
    const options = baselineOptions(event.parameters);
    const { firstDay, lastDay } = daysInView(event.parameters, options, timeZone);
    const stored = await storedDays(fhir, patient.id as string, dayBounds(firstDay, timeZone).start);
    const notes: string[] = [];
    for (const measure of BASELINE_MEASURES) {
      const series = stored.get(measure) ?? [];
      const newest = series.reduce<string | undefined>((max, d) => (max && max > d.day ? max : d.day), undefined);
      const from = newest && newest >= firstDay ? addDays(newest, 1) : firstDay;
      if (from > lastDay) continue;
      const added = await summarise(fhir, patient.id as string, measure, from, lastDay, timeZone);
      if (added.length === 0) continue;
      notes.push(await assess(fhir, event, patient.id as string, measure, [...series, ...added], options, timeZone));
    }
    return { outcome: 'success', message: notes.length ? notes.join('; ') : `no new days up to ${lastDay}` };
  },
};

/**
 * The newest day that ended `settleHours` ago (late uploads of a day are in by then), and the first
 * day its assessment reads: its baseline window before the last `ofDays`.
 */
function daysInView(parameters: Parameters, options: BaselineOptions, timeZone: string): { firstDay: string; lastDay: string } {
  const lastDay = addDays(dayOf(Date.now() - numberParameter(parameters, 'settleHours') * HOUR, timeZone), -1);
  return { firstDay: addDays(lastDay, -(options.windowDays + options.ofDays - 1)), lastDay };
}

/**
 * A reading entered in error (bots/README.md): the daily value of its day, if already stored, is
 * recomputed without it (entered in error too when no reading is left). When that moves the value,
 * the baseline alerts citing it are retracted, as they rested on a reading that never was. The
 * measure's newest day is then assessed again on the corrected values, as the sweep would: a
 * deviation that still holds is raised anew, one that no longer does ends.
 */
async function correct(fhir: FhirClient, event: BotEvent, observation: Observation, timeZone: string): Promise<BotResult> {
  const patientId = patientOf(observation);
  const time = effectiveTime(observation);
  if (!patientId || typeof time !== 'number') return { outcome: 'skipped', message: 'the Observation is not a reading of a Patient with a time' };
  const day = dayOf(time, timeZone);
  const options = baselineOptions(event.parameters);
  const from = dayBounds(daysInView(event.parameters, options, timeZone).firstDay, timeZone).start;
  const notes: string[] = [];
  for (const measure of measuresOf(observation)) {
    const [daily] = await fhir.search<Observation>('Observation', { identifier: `${DAILY_KEY}|${dailyKey(patientId, measure, day)}`, _count: '1' });
    if (!daily || daily.status === 'entered-in-error') continue;
    const fresh = await recomputed(fhir, patientId, measure, daily, day, timeZone);
    const moved = fresh.status !== daily.status || fresh.valueQuantity?.value !== daily.valueQuantity?.value;
    // retracted before the day is rewritten, so a retry after a failure still finds the value moved
    const retracted = moved ? await retractAlerts(fhir, event, patientId, daily.id as string) : [];
    if (moved || JSON.stringify(fresh.note) !== JSON.stringify(daily.note)) await fhir.update(fresh, { ifMatch: daily.meta?.versionId });
    const change = fresh.status === 'entered-in-error' ? 'no reading left' : moved ? `now ${fresh.valueQuantity?.value}` : 'value unchanged';
    const series = (await storedDays(fhir, patientId, from)).get(measure) ?? [];
    notes.push(`${measure} on ${day}: ${change}, retracted ${retracted.length} alert(s); ${await assess(fhir, event, patientId, measure, series, options, timeZone)}`);
  }
  return { outcome: 'success', message: notes.length ? `entered in error: ${notes.join('; ')}` : 'entered in error: its day has no daily value yet' };
}

/** The baseline measures an Observation's readings are of: both halves of a blood-pressure panel. */
function measuresOf(observation: Observation): BaselineMeasure[] {
  const codes = (observation.code?.coding ?? []).filter((c) => c.system === LOINC).map((c) => c.code);
  return BASELINE_MEASURES.filter((m) => codesOf(m).some((code) => codes.includes(code)));
}

/** The stored daily value as the day's readings now make it: entered in error when none is left. */
async function recomputed(fhir: FhirClient, patientId: string, measure: BaselineMeasure, daily: Observation, day: string, timeZone: string): Promise<Observation> {
  const summary = summariseDays(measure, await readingsOfDays(fhir, patientId, measure, day, day, timeZone), timeZone).find((d) => d.day === day);
  if (!summary) return { ...daily, status: 'entered-in-error' };
  return { ...dailyObservation(daily.subject as Reference<Patient>, measure, summary, dayBounds(day, timeZone)), id: daily.id, meta: daily.meta };
}

function baselineOptions(parameters: Parameters): BaselineOptions {
  const options = { ...BASELINE_DEFAULTS };
  for (const name of Object.keys(options) as (keyof BaselineOptions)[]) options[name] = numberParameter(parameters, name);
  return options;
}

/** The patient's daily values since `from`, by measure. */
async function storedDays(fhir: FhirClient, patientId: string, from: number): Promise<Map<BaselineMeasure, DayValue[]>> {
  const found = await fhir.search<Observation>('Observation', {
    subject: `Patient/${patientId}`,
    code: dailyCodes().join(','),
    date: `ge${new Date(from).toISOString()}`,
    _count: '1000',
  });
  const days = new Map<BaselineMeasure, DayValue[]>();
  for (const o of found) {
    const daily = readDaily(o);
    if (daily) days.set(daily.measure, [...(days.get(daily.measure) ?? []), daily.value]);
  }
  return days;
}

/** The measure's readings of days `from`…`to` that vitals/ accepts (units converted, implausible ones left out). */
async function readingsOfDays(fhir: FhirClient, patientId: string, measure: BaselineMeasure, from: string, to: string, timeZone: string): Promise<QuantityReading[]> {
  const start = dayBounds(from, timeZone).start;
  const end = dayBounds(to, timeZone).end;
  const readings: QuantityReading[] = [];
  const pages = fhir.searchPages<Observation>('Observation', {
    subject: `Patient/${patientId}`,
    code: codesOf(measure).map((c) => `${LOINC}|${c}`).join(','),
    date: [`ge${new Date(start).toISOString()}`, `lt${new Date(end).toISOString()}`],
    _count: PAGE,
  });
  for await (const page of pages) {
    for (const o of page) {
      const n = normaliseObservation(o);
      if (n.kind === 'readings') readings.push(...n.readings.filter((r): r is QuantityReading => r.measure === measure));
    }
  }
  return readings;
}

/** Reads the measure's readings of days `from`…`to` and stores a daily value for each day that has any. */
async function summarise(fhir: FhirClient, patientId: string, measure: BaselineMeasure, from: string, to: string, timeZone: string): Promise<DayValue[]> {
  const readings = await readingsOfDays(fhir, patientId, measure, from, to, timeZone);
  const subject = { reference: `Patient/${patientId}` };
  const added: DayValue[] = [];
  for (const day of summariseDays(measure, readings, timeZone)) {
    // Readings time-stamped outside [start, end) by the search's date precision are left to their own day.
    if (day.day < from || day.day > to) continue;
    const observation = dailyObservation(subject, measure, day, dayBounds(day.day, timeZone));
    const key = observation.identifier?.[0].value as string;
    const { resource } = await fhir.createIfNoneExist(observation, `identifier=${encodeURIComponent(`${DAILY_KEY}|${key}`)}`);
    added.push({ day: day.day, value: resource.valueQuantity?.value as number, observationId: resource.id });
  }
  return added;
}

/** Raises or clears the measure's baseline alert on its newest day. */
async function assess(
  fhir: FhirClient,
  event: BotEvent,
  patientId: string,
  measure: BaselineMeasure,
  series: DayValue[],
  options: BaselineOptions,
  timeZone: string,
): Promise<string> {
  const assessment = assessBaseline(measure, series, options);
  const rule = `baseline-${measure}`;
  if (assessment.kind === 'learning') return `${measure}: learning (${assessment.days} of ${options.minDays} days)`;
  const at = new Date(dayBounds(assessment.latest.day, timeZone).start).toISOString();
  if (assessment.kind === 'within') {
    await clearAlerts(fhir, event, patientId, [rule], at);
    return `${measure}: within baseline (z ${assessment.latest.z.toFixed(1)})`;
  }
  const alert = await raiseAlert(fhir, event, {
    patientId,
    rule,
    code: 'baseline-deviation',
    label: `Deviation from personal baseline: ${METHODS[measure].label}`,
    priority: 'routine',
    evidence: assessment.evidence.map((d) => ({ reference: `Observation/${d.observationId}` })),
    text: assessment.text,
    at,
  });
  return `${measure}: ${assessment.direction} deviation, alert ${alert.action}, care team ${alert.notice}`;
}
