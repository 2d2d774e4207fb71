import { describe } from './json.ts';

/** Parsing of the scalar values a template extracts: decimals, timestamps, measurement values. */

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A finite decimal from its text ("72", " 36.6 ", "1e2"); NaN, Infinity, hex and empty text are not numbers. */
export function parseDecimal(text: string): number | undefined {
  const trimmed = text.trim();
  if (!DECIMAL.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) ? n : undefined;
}

/** A measurement value as MedTech keeps it: text. Objects, arrays and non-finite numbers are refused. */
export function scalarText(value: unknown): Parsed<string> {
  if (typeof value === 'string') return { ok: true, value };
  if (typeof value === 'boolean') return { ok: true, value: String(value) };
  if (typeof value === 'number') {
    return Number.isFinite(value) ? { ok: true, value: String(value) } : { ok: false, reason: `${value} is not a finite number` };
  }
  return { ok: false, reason: `expected a single value, got ${describe(value)}` };
}

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?$/;

/**
 * An ISO 8601 / RFC 3339 date-time. A zone is required: a reading without one is ambiguous by
 * up to a day, which is worse for clinical use than refusing it.
 */
export function parseTimestamp(value: unknown, label = 'timestamp'): Parsed<Date> {
  if (typeof value !== 'string') {
    return { ok: false, reason: `${label} must be an ISO 8601 string, got ${describe(value)} (use fromUnixTimestamp for epoch numbers)` };
  }
  const m = TIMESTAMP.exec(value.trim());
  if (!m) return { ok: false, reason: `${label} ${describe(value)} is not an ISO 8601 date-time` };
  const [, y, mo, d, h, mi, s = '0', fraction = '', zulu, sign, offH, offM = '0'] = m;
  if (!zulu && !sign) return { ok: false, reason: `${label} ${describe(value)} has no time zone (add Z or ±hh:mm)` };
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  const ms = Number(fraction.padEnd(3, '0').slice(0, 3));
  const local = Date.UTC(fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], ms);
  const check = new Date(local);
  const valid =
    check.getUTCFullYear() === fields[0] &&
    check.getUTCMonth() === fields[1] &&
    check.getUTCDate() === fields[2] &&
    fields[3] < 24 &&
    fields[4] < 60 &&
    fields[5] < 60 &&
    Number(offH ?? 0) < 24 &&
    Number(offM) < 60;
  if (!valid) return { ok: false, reason: `${label} ${describe(value)} is not a valid date-time` };
  const offset = sign ? (sign === '-' ? -1 : 1) * (Number(offH) * 60 + Number(offM)) : 0;
  return { ok: true, value: new Date(local - offset * 60_000) };
}
