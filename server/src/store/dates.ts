/**
 * FHIR dates are ranges: `2024` means the whole year. A value becomes a half-open [s, e) range of
 * ISO instants; a value without a zone is read as UTC.
 */
const PATTERN =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

export function dateRange(value: string): { s: string; e: string } {
  const m = PATTERN.exec(value);
  if (!m) return { s: '', e: '' };
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  const year = Number(y);
  if (!mo) return { s: utc(year, 0, 1), e: utc(year + 1, 0, 1) };
  const month = Number(mo) - 1;
  if (!d) return { s: utc(year, month, 1), e: utc(year, month + 1, 1) };
  const day = Number(d);
  if (!h) return { s: utc(year, month, day), e: utc(year, month, day + 1) };
  const offset = zoneOffsetMs(zone);
  const start = Date.UTC(year, month, day, Number(h), Number(mi), Number(sec ?? 0), frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0) - offset;
  // precision: minutes → 1 min, seconds → 1 s, fractions → 1 ms
  const width = sec === undefined ? 60_000 : frac === undefined ? 1000 : 1;
  return { s: new Date(start).toISOString(), e: new Date(start + width).toISOString() };
}

function utc(year: number, month: number, day: number): string {
  return new Date(Date.UTC(year, month, day)).toISOString();
}

function zoneOffsetMs(zone: string | undefined): number {
  if (!zone || zone === 'Z') return 0;
  const sign = zone[0] === '-' ? -1 : 1;
  return sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
}

export function isValidDateValue(value: string): boolean {
  const r = dateRange(value);
  return r.s !== '' && !r.s.includes('NaN');
}
