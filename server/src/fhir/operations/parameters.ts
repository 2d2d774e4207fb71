import type { Request } from 'express';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { parseDate } from '../../store/search/values.ts';
import { searchParams } from '../context.ts';
import { badRequest } from '../outcome.ts';

/** Handled by the HTTP layer for every interaction. */
const FORMAT_PARAMS = new Set(['_format', '_pretty']);

/**
 * An operation's input parameters as URL-style key/value pairs: the query string of a GET, or the
 * `Parameters` body of a POST flattened the same way (Coding → `system|code`, Period → `start/end`),
 * so that each operation parses one form only.
 */
export function operationParams(req: Request): URLSearchParams {
  const params = searchParams(req);
  const body = req.body as Parameters | undefined;
  if (req.method !== 'POST' || !req.is(['application/json', 'application/fhir+json'])) return params;
  if (body?.resourceType !== 'Parameters') throw badRequest('The operation takes a Parameters resource as its body', 'resourceType');
  (body.parameter ?? []).forEach((p, i) => params.append(p.name ?? '', parameterText(p, i)));
  return params;
}

function parameterText(p: ParametersParameter, index: number): string {
  const where = `Parameters.parameter[${index}]`;
  if (!p.name) throw badRequest('A parameter has no name', `${where}.name`);
  if (p.valueCoding) return `${p.valueCoding.system ?? ''}|${p.valueCoding.code ?? ''}`;
  if (p.valuePeriod) return `${p.valuePeriod.start ?? ''}/${p.valuePeriod.end ?? ''}`;
  if (p.valueReference?.reference) return p.valueReference.reference;
  const value: unknown = Object.entries(p).find(([k]) => k.startsWith('value'))?.[1];
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw badRequest(`Parameter "${p.name}" must have a primitive, Coding, Period or Reference value`, where);
}

/** Rejects parameters the operation does not define, naming the first one. */
export function checkKnown(params: URLSearchParams, known: ReadonlySet<string>): void {
  for (const key of params.keys()) {
    if (!known.has(key) && !FORMAT_PARAMS.has(key)) throw badRequest(`Unknown parameter "${key}"`, key);
  }
}

/** The one value of a 0..1 parameter. */
export function single(params: URLSearchParams, name: string): string | undefined {
  const values = params.getAll(name);
  if (values.length > 1) throw badRequest(`Parameter "${name}" may be given only once`, name);
  return values[0];
}

export function positiveInt(text: string, name: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || !Number.isSafeInteger(n)) throw badRequest(`${name} must be a positive integer, not "${text}"`, name);
  return n;
}

export function parseBoolean(text: string, name: string): boolean {
  if (text !== 'true' && text !== 'false') throw badRequest(`${name} must be true or false, not "${text}"`, name);
  return text === 'true';
}

/** `start/end` (either side may be empty) or one date standing for its whole precision: half-open instants. */
export function parsePeriod(text: string, name: string): { start?: string; end?: string } {
  const parts = text.split('/');
  if (parts.length > 2 || (parts.length === 2 && !parts[0] && !parts[1])) throw badRequest(`${name} must be start/end or a date, not "${text}"`, name);
  const [from, to = from] = parts;
  const period = { start: from ? parseDate(from, name).s : undefined, end: to ? parseDate(to, name).e : undefined };
  if (period.start && period.end && period.start >= period.end) throw badRequest(`${name} ends before it starts`, name);
  return period;
}
