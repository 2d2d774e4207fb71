/**
 * FHIR dates are ranges: `2024` means the whole year. A value becomes a half-open [s, e) range of
 * ISO instants; a value without a zone is read as UTC.
 */
const PATTERN =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;
const INVALID = { s: '', e: '' };

export function dateRange(value: string): { s: string; e: string } {
  const m = PATTERN.exec(value);
  if (!m) return INVALID;
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  const year = Number(y);
  const month = mo ? Number(mo) - 1 : 0;
  const day = d ? Number(d) : 1;
  // Date.UTC would roll 2024-02-30 over into March: out-of-range parts are invalid instead.
  if (month > 11 || day < 1 || day > new Date(utcMs(year, month + 1, 0)).getUTCDate()) return INVALID;
  if (!mo) return range(utcMs(year, 0, 1), utcMs(year + 1, 0, 1));
  if (!d) return range(utcMs(year, month, 1), utcMs(year, month + 1, 1));
  if (!h) return range(utcMs(year, month, day), utcMs(year, month, day + 1));
  const offset = zoneOffsetMs(zone);
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec ?? 0) > 60 || offset === undefined) return INVALID;
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  const start = utcMs(year, month, day, Number(h), Number(mi), Number(sec ?? 0), ms) - offset;
  // precision: minutes → 1 min, seconds → 1 s, fractions → 1 ms
  const width = sec === undefined ? 60_000 : frac === undefined ? 1000 : 1;
  return range(start, start + width);
}

/** The end of year 9999 has no four-digit ISO form; PostgreSQL's `infinity` stands in for it. */
const END_OF_9999 = Date.UTC(10000, 0, 1);

function range(start: number, end: number): { s: string; e: string } {
  return { s: new Date(start).toISOString(), e: end >= END_OF_9999 ? 'infinity' : new Date(end).toISOString() };
}

/** Like Date.UTC, but years 0–99 stay themselves instead of becoming 1900–1999. */
function utcMs(year: number, month: number, day: number, h = 0, mi = 0, s = 0, ms = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  date.setUTCHours(h, mi, s, ms);
  return date.getTime();
}

/** The zone's offset, or undefined when it is not a real one (beyond ±14:00). */
function zoneOffsetMs(zone: string | undefined): number | undefined {
  if (!zone || zone === 'Z') return 0;
  const hours = Number(zone.slice(1, 3));
  const minutes = Number(zone.slice(4, 6));
  if (hours > 14 || minutes > 59 || (hours === 14 && minutes > 0)) return undefined;
  return (zone[0] === '-' ? -1 : 1) * (hours * 60 + minutes) * 60_000;
}

export function isValidDateValue(value: string): boolean {
  return dateRange(value).s !== '';
}
