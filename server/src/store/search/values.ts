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
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw badRequest(`Invalid number "${text}" for ${name}`, name);
  const value = Number(text);
  const mantissa = text.split(/[eE]/)[0];
  const exponent = Number(text.split(/[eE]/)[1] ?? 0);
  const decimals = mantissa.includes('.') ? mantissa.length - mantissa.indexOf('.') - 1 : 0;
  const half = 0.5 * 10 ** (exponent - decimals);
  return { value, low: value - half, high: value + half };
}

export function parseDate(text: string, name: string): { s: string; e: string } {
  const range = dateRange(text);
  if (!range.s || range.s.includes('NaN')) throw badRequest(`Invalid date "${text}" for ${name}`, name);
  return range;
}

export const escapeLike = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);
