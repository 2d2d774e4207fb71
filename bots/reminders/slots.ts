import type { Timing } from '@medplum/fhirtypes';
import { addDays, dayBounds, dayOf, instantOf } from '../calendar/zone.ts';

/**
 * When a care plan expects a measurement (bots/README.md, "Measurement reminders"). Two forms of
 * `Timing.repeat` are understood:
 * - `timeOfDay` (optionally on `dayOfWeek` only): due at each time, in the patient's time zone;
 * - `frequency` per `period` 1 `periodUnit` `d` or `wk`: that many readings in each day or
 *   week (Monday to Sunday), at any time.
 * `boundsPeriod` limits either. Anything else (`when`, `count`, longer periods…) is refused, so
 * that nobody is reminded of a schedule Vigil misread.
 */
export type Plan =
  | { kind: 'times'; times: string[]; days?: ReadonlySet<string>; bounds: Bounds }
  | { kind: 'per-period'; unit: 'd' | 'wk'; frequency: number; bounds: Bounds };

interface Bounds {
  start?: number;
  end?: number;
}

/**
 * One expected measurement. Readings in [from, until) count for it, so a late one still counts
 * until the next is expected; it needs `count` of them. If none has come by `remindAt` (the due
 * time plus the grace period, or the grace period before a day's or week's end), the patient is
 * reminded.
 */
export interface Slot {
  from: number;
  remindAt: number;
  until: number;
  count: number;
  /** For people: `08:00 on 2026-03-10`, `2026-03-10`, `the week of 2026-03-09`. */
  label: string;
}

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const TIME = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/;

export function parseTiming(timing: Timing | undefined): Plan | { unsupported: string } {
  const repeat = timing?.repeat;
  if (!repeat) return { unsupported: 'no Timing.repeat' };
  if (timing?.event?.length || repeat.when?.length || repeat.count !== undefined || repeat.boundsDuration || repeat.boundsRange) {
    return { unsupported: 'only timeOfDay, dayOfWeek, frequency, period, periodUnit and boundsPeriod are understood' };
  }
  const bounds: Bounds = {
    start: repeat.boundsPeriod?.start ? Date.parse(repeat.boundsPeriod.start) : undefined,
    end: repeat.boundsPeriod?.end ? Date.parse(repeat.boundsPeriod.end) : undefined,
  };
  if (repeat.timeOfDay?.length) {
    const bad = repeat.timeOfDay.find((t) => !TIME.test(t));
    if (bad) return { unsupported: `timeOfDay "${bad}" is not HH:MM[:SS]` };
    const times = [...new Set(repeat.timeOfDay.map((t) => t.slice(0, 5)))].sort();
    return { kind: 'times', times, days: repeat.dayOfWeek?.length ? new Set(repeat.dayOfWeek) : undefined, bounds };
  }
  const { frequency = 1, period, periodUnit } = repeat;
  if (period !== 1 || (periodUnit !== 'd' && periodUnit !== 'wk') || !(Number.isInteger(frequency) && frequency >= 1) || repeat.dayOfWeek?.length) {
    return { unsupported: 'give timeOfDay, or a frequency per period 1 d or 1 wk' };
  }
  return { kind: 'per-period', unit: periodUnit, frequency, bounds };
}

/**
 * The slots expected from `start` (the plan's start) that have begun by `now`, oldest first,
 * looking back at most `lookbackDays`.
 */
export function slotsUntil(plan: Plan, options: { start: number; now: number; timeZone: string; graceMs: number; lookbackDays: number }): Slot[] {
  const { now, timeZone, graceMs } = options;
  const start = Math.max(options.start, plan.bounds.start ?? -Infinity);
  const today = dayOf(now, timeZone);
  const first = addDays(today, -options.lookbackDays);
  // a week ahead: the next slot of a weekly time is known, and with it how long a late reading counts
  const last = addDays(today, 8);
  const all = plan.kind === 'times' ? timeSlots(plan, first, last, timeZone, graceMs) : periodSlots(plan, first, last, timeZone, graceMs);
  const end = plan.bounds.end ?? Infinity;
  return all.filter((s) => s.from <= now && dueOf(plan, s, graceMs) >= start && dueOf(plan, s, graceMs) < end);
}

/** The due time: `from` + grace for a time of day, the period's end otherwise. */
const dueOf = (plan: Plan, s: Slot, graceMs: number): number => (plan.kind === 'times' ? s.from + graceMs : s.until);

function timeSlots(plan: Extract<Plan, { kind: 'times' }>, first: string, last: string, timeZone: string, graceMs: number): Slot[] {
  const dues: { due: number; label: string }[] = [];
  for (let day = first; day <= last; day = addDays(day, 1)) {
    if (plan.days && !plan.days.has(WEEKDAYS[new Date(`${day}T12:00:00Z`).getUTCDay()])) continue;
    for (const time of plan.times) dues.push({ due: instantOf(day, time, timeZone), label: `${time} on ${day}` });
  }
  // A late reading counts until the next slot opens; only the last enumerated, a week ahead, has no next.
  return dues.map(({ due, label }, i) => {
    const remindAt = due + graceMs;
    const next = dues[i + 1] ? dues[i + 1].due - graceMs : Infinity;
    return { from: due - graceMs, remindAt, until: Math.max(remindAt, next), count: 1, label };
  });
}

function periodSlots(plan: Extract<Plan, { kind: 'per-period' }>, first: string, last: string, timeZone: string, graceMs: number): Slot[] {
  const slots: Slot[] = [];
  let day = first;
  if (plan.unit === 'wk') while (new Date(`${day}T12:00:00Z`).getUTCDay() !== 1) day = addDays(day, -1);
  const step = plan.unit === 'wk' ? 7 : 1;
  for (; day <= last; day = addDays(day, step)) {
    const from = dayBounds(day, timeZone).start;
    const until = dayBounds(addDays(day, step - 1), timeZone).end;
    const label = plan.unit === 'wk' ? `the week of ${day}` : day;
    slots.push({ from, remindAt: Math.max(from, until - graceMs), until, count: plan.frequency, label });
  }
  return slots;
}

export type SlotState = 'taken' | 'open' | 'remind' | 'missed';

/** Where a slot stands at `now`, given how many readings it has so far. */
export function slotState(slot: Slot, readings: number, now: number): SlotState {
  if (readings >= slot.count) return 'taken';
  if (now >= slot.until) return 'missed';
  return now >= slot.remindAt ? 'remind' : 'open';
}
