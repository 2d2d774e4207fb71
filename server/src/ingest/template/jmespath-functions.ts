import { deepEqual, isPlainObject } from './json.ts';
import { parseDecimal } from './scalars.ts';

/**
 * The JMESPath built-in functions (jmespath.org/specification) plus MedTech's custom functions
 * (add, subtract, multiply, divide, pow, insertString, fromUnixTimestamp, fromUnixTimestampMs).
 * Wrong argument types throw, as the specification requires; the caller turns that into a
 * per-message rejection.
 */

/** A `&expression` argument, evaluated by the interpreter on demand. */
export interface Expref {
  readonly expref: (value: unknown) => unknown;
}

export interface FunctionDef {
  readonly min: number;
  /** Maximum argument count; Infinity for variadic functions. */
  readonly max: number;
  readonly call: (args: unknown[]) => unknown;
}

function isExpref(value: unknown): value is Expref {
  return typeof value === 'object' && value !== null && 'expref' in value && typeof value.expref === 'function';
}

function typeName(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  if (isExpref(value)) return 'expref';
  if (isPlainObject(value)) return 'object';
  return typeof value;
}

function fail(fn: string, message: string): never {
  throw new TypeError(`${fn}(): ${message}`);
}

function number(fn: string, args: unknown[], i: number): number {
  const v = args[i];
  if (typeof v !== 'number') fail(fn, `argument ${i + 1} must be a number, got ${typeName(v)}`);
  return v;
}

function string(fn: string, args: unknown[], i: number): string {
  const v = args[i];
  if (typeof v !== 'string') fail(fn, `argument ${i + 1} must be a string, got ${typeName(v)}`);
  return v;
}

function array(fn: string, args: unknown[], i: number): unknown[] {
  const v = args[i];
  if (!Array.isArray(v)) fail(fn, `argument ${i + 1} must be an array, got ${typeName(v)}`);
  return v;
}

function object(fn: string, args: unknown[], i: number): Record<string, unknown> {
  const v = args[i];
  if (!isPlainObject(v)) fail(fn, `argument ${i + 1} must be an object, got ${typeName(v)}`);
  return v;
}

function expref(fn: string, args: unknown[], i: number): Expref {
  const v = args[i];
  if (!isExpref(v)) fail(fn, `argument ${i + 1} must be an expression reference (&expr)`);
  return v;
}

/** Arrays of all numbers or all strings: what max, min, sort and the *_by keys accept. */
function ordered(fn: string, items: unknown[]): (number | string)[] {
  if (items.every((v) => typeof v === 'number') || items.every((v) => typeof v === 'string')) return items as (number | string)[];
  return fail(fn, 'expected an array of numbers or an array of strings');
}

function numbers(fn: string, args: unknown[], i: number): number[] {
  const items = array(fn, args, i);
  if (!items.every((v) => typeof v === 'number')) fail(fn, `argument ${i + 1} must be an array of numbers`);
  return items as number[];
}

const byKey = (a: number | string, b: number | string) => (a < b ? -1 : a > b ? 1 : 0);

function sortBy(fn: string, args: unknown[]): { item: unknown; key: number | string }[] {
  const items = array(fn, args, 0);
  const key = expref(fn, args, 1);
  const keys = ordered(fn, items.map((item) => key.expref(item)));
  return items.map((item, i) => ({ item, key: keys[i]! })).sort((a, b) => byKey(a.key, b.key));
}

function finite(fn: string, result: number): number {
  if (!Number.isFinite(result)) fail(fn, 'result is not a finite number');
  return result;
}

function isoFromMs(fn: string, ms: number): string {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) fail(fn, `${ms} ms is outside the representable date range`);
  return date.toISOString();
}

const fixed = (n: number, call: (args: unknown[]) => unknown): FunctionDef => ({ min: n, max: n, call });

export const FUNCTIONS: Readonly<Record<string, FunctionDef>> = {
  abs: fixed(1, (a) => Math.abs(number('abs', a, 0))),
  avg: fixed(1, (a) => {
    const items = numbers('avg', a, 0);
    return items.length === 0 ? null : items.reduce((s, v) => s + v, 0) / items.length;
  }),
  ceil: fixed(1, (a) => Math.ceil(number('ceil', a, 0))),
  contains: fixed(2, (a) => {
    const subject = a[0];
    if (typeof subject === 'string') return typeof a[1] === 'string' && subject.includes(a[1]);
    return array('contains', a, 0).some((v) => deepEqual(v, a[1]));
  }),
  ends_with: fixed(2, (a) => string('ends_with', a, 0).endsWith(string('ends_with', a, 1))),
  floor: fixed(1, (a) => Math.floor(number('floor', a, 0))),
  join: fixed(2, (a) => {
    const glue = string('join', a, 0);
    const items = array('join', a, 1);
    if (!items.every((v) => typeof v === 'string')) fail('join', 'argument 2 must be an array of strings');
    return items.join(glue);
  }),
  keys: fixed(1, (a) => Object.keys(object('keys', a, 0))),
  length: fixed(1, (a) => {
    const v = a[0];
    if (typeof v === 'string') return [...v].length;
    if (Array.isArray(v)) return v.length;
    if (isPlainObject(v)) return Object.keys(v).length;
    return fail('length', `argument 1 must be a string, array or object, got ${typeName(v)}`);
  }),
  map: fixed(2, (a) => {
    const fn = expref('map', a, 0);
    return array('map', a, 1).map((item) => fn.expref(item));
  }),
  max: fixed(1, (a) => {
    const items = ordered('max', array('max', a, 0));
    return items.length === 0 ? null : items.reduce((m, v) => (v > m ? v : m));
  }),
  max_by: fixed(2, (a) => sortBy('max_by', a).at(-1)?.item ?? null),
  merge: { min: 1, max: Infinity, call: (a) => Object.assign({}, ...a.map((_, i) => object('merge', a, i))) },
  min: fixed(1, (a) => {
    const items = ordered('min', array('min', a, 0));
    return items.length === 0 ? null : items.reduce((m, v) => (v < m ? v : m));
  }),
  min_by: fixed(2, (a) => sortBy('min_by', a)[0]?.item ?? null),
  not_null: { min: 1, max: Infinity, call: (a) => a.find((v) => v !== null && v !== undefined) ?? null },
  reverse: fixed(1, (a) => {
    const v = a[0];
    if (typeof v === 'string') return [...v].reverse().join('');
    return [...array('reverse', a, 0)].reverse();
  }),
  sort: fixed(1, (a) => [...ordered('sort', array('sort', a, 0))].sort(byKey)),
  sort_by: fixed(2, (a) => sortBy('sort_by', a).map((e) => e.item)),
  starts_with: fixed(2, (a) => string('starts_with', a, 0).startsWith(string('starts_with', a, 1))),
  sum: fixed(1, (a) => numbers('sum', a, 0).reduce((s, v) => s + v, 0)),
  to_array: fixed(1, (a) => (Array.isArray(a[0]) ? a[0] : [a[0]])),
  to_number: fixed(1, (a) => {
    const v = a[0];
    if (typeof v === 'number') return v;
    return typeof v === 'string' ? (parseDecimal(v) ?? null) : null;
  }),
  to_string: fixed(1, (a) => (typeof a[0] === 'string' ? a[0] : JSON.stringify(a[0]))),
  type: fixed(1, (a) => typeName(a[0])),
  values: fixed(1, (a) => Object.values(object('values', a, 0))),

  // MedTech's custom functions.
  add: fixed(2, (a) => finite('add', number('add', a, 0) + number('add', a, 1))),
  subtract: fixed(2, (a) => finite('subtract', number('subtract', a, 0) - number('subtract', a, 1))),
  multiply: fixed(2, (a) => finite('multiply', number('multiply', a, 0) * number('multiply', a, 1))),
  divide: fixed(2, (a) => {
    const divisor = number('divide', a, 1);
    if (divisor === 0) fail('divide', 'division by zero');
    return finite('divide', number('divide', a, 0) / divisor);
  }),
  pow: fixed(2, (a) => finite('pow', number('pow', a, 0) ** number('pow', a, 1))),
  insertString: fixed(3, (a) => {
    const original = string('insertString', a, 0);
    const insert = string('insertString', a, 1);
    const pos = number('insertString', a, 2);
    if (!Number.isInteger(pos) || pos < 0 || pos > original.length) fail('insertString', `position ${pos} is out of range`);
    return original.slice(0, pos) + insert + original.slice(pos);
  }),
  fromUnixTimestamp: fixed(1, (a) => isoFromMs('fromUnixTimestamp', number('fromUnixTimestamp', a, 0) * 1000)),
  fromUnixTimestampMs: fixed(1, (a) => isoFromMs('fromUnixTimestampMs', number('fromUnixTimestampMs', a, 0))),
};
