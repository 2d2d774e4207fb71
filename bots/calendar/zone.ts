/**
 * Calendar days and wall-clock times in an IANA time zone (a patient's "day", "08:00"), from the
 * platform's Intl data: no offsets are assumed, so daylight saving time is handled.
 */

const DAY_MS = 86_400_000;
const formats = new Map<string, Intl.DateTimeFormat>();

/** Throws a RangeError naming the zone when it is not one the platform knows. */
function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formats.set(timeZone, f);
  }
  return f;
}

export function isTimeZone(timeZone: string): boolean {
  try {
    format(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The wall clock at `at` in the zone, as if it were UTC: its difference from `at` is the zone's offset. */
function wallClock(at: number, timeZone: string): number {
  const parts = Object.fromEntries(format(timeZone).formatToParts(new Date(at)).map((p) => [p.type, p.value]));
  return Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
}

/** `YYYY-MM-DD`: the day `at` falls on in the zone. */
export function dayOf(at: number, timeZone: string): string {
  return new Date(wallClock(Math.floor(at / 1000) * 1000, timeZone)).toISOString().slice(0, 10);
}

/**
 * The instant the zone's clock shows `time` (`HH:MM[:SS]`) on `day`. Of a time that occurs twice
 * (autumn), the first is taken; a time a spring-forward skips is read with the offset before it.
 * Zones change offset at most once within a day either side, which holds for every IANA zone.
 */
export function instantOf(day: string, time: string, timeZone: string): number {
  const wall = Date.parse(`${day}T${time.length === 5 ? `${time}:00` : time}Z`);
  if (Number.isNaN(wall)) throw new RangeError(`not a day and time: ${day} ${time}`);
  const offsetAt = (at: number): number => wallClock(at, timeZone) - at;
  const before = wall - offsetAt(wall - DAY_MS);
  const after = wall - offsetAt(wall + DAY_MS);
  const valid = [before, after].filter((t) => wallClock(t, timeZone) === wall);
  return valid.length ? Math.min(...valid) : before;
}

/** `[start, end)` of the day in the zone: 23, 24 or 25 hours. */
export function dayBounds(day: string, timeZone: string): { start: number; end: number } {
  return { start: instantOf(day, '00:00:00', timeZone), end: instantOf(addDays(day, 1), '00:00:00', timeZone) };
}

export function addDays(day: string, days: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

/** Whole days from `a` to `b` (positive when b is later). */
export function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / DAY_MS);
}
