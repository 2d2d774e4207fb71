import { badRequest } from '../../fhir/outcome.ts';
import { dateRange } from '../dates.ts';

/** Search prefixes for ordered types (number, date, quantity). */
export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';
const PREFIXES = new Set<Prefix>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

export function splitPrefix(value: string): { prefix: Prefix; rest: string } {
  const p = value.slice(0, 2) as Prefix;
  return PREFIXES.has(p) && /^[a-z]{2}[-+\d.]/.test(value) ? { prefix: p, rest: value.slice(2) } : { prefix: 'eq', rest: value };
}

/** A number with the implicit range of its precision: `100` is [99.5, 100.5). */
export function parseNumber(text: string, name: string): { value: number; low: number; high: number } {
  const value = Number(text);
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) || !Number.isFinite(value)) throw badRequest(`Invalid number "${text}" for ${name}`, name);
  const mantissa = text.split(/[eE]/)[0];
  const exponent = Number(text.split(/[eE]/)[1] ?? 0);
  const decimals = mantissa.includes('.') ? mantissa.length - mantissa.indexOf('.') - 1 : 0;
  const half = 0.5 * 10 ** (exponent - decimals);
  // 100.4 - 0.05 is 100.35000000000001 in floating point, which would exclude a stored 100.35
  const digits = Math.min(Math.max(decimals - exponent + 1, 0), 100);
  const round = (x: number): number => Number(x.toFixed(digits));
  return { value, low: round(value - half), high: round(value + half) };
}

/** The range a prefixed number stands for: its precision, or ±10% of it for `ap`. */
export function numberRange(prefix: Prefix, text: string, name: string): { value: number; low: number; high: number } {
  const n = parseNumber(text, name);
  if (prefix !== 'ap') return n;
  const delta = Math.abs(n.value) * 0.1;
  return { value: n.value, low: n.value - delta, high: n.value + delta };
}

export function parseDate(text: string, name: string): { s: string; e: string } {
  // an unencoded `+` of a time zone arrives as a space: `2024-01-01T10:00:00 01:00`
  const range = dateRange(text.replace(/ (\d{2}:\d{2})$/, '+$1'));
  if (!range.s) throw badRequest(`Invalid date "${text}" for ${name}`, name);
  return range;
}

export const escapeLike = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);
