import jmespath from 'jmespath';
import { FUNCTIONS, type Expref } from './jmespath-functions.ts';
import { deepEqual, isPlainObject } from './json.ts';

/**
 * JMESPath with MedTech's custom functions. jmespath.js parses (its grammar is the reference
 * one) but has no way to register functions, so this module interprets the parsed tree itself,
 * following the specification and jmespath.js's own evaluation order.
 */

interface Node {
  readonly type: string;
  readonly name?: string;
  readonly value?: unknown;
  readonly children?: readonly (Node | number | null)[];
}

export interface JmesPath {
  evaluate(data: unknown): unknown;
  /** Whether the result is a projection, whose items MedTech treats as separate tokens. */
  readonly projects: boolean;
}

const parse = (jmespath as unknown as { compile(expression: string): Node }).compile;

export function compileJmesPath(source: string): JmesPath {
  let ast: Node;
  try {
    ast = parse(source);
  } catch (error) {
    throw new SyntaxError(`JMESPath: ${(error as Error).message}`);
  }
  check(ast);
  return { evaluate: (data) => visit(ast, data), projects: isProjection(ast) };
}

const PROJECTIONS = new Set(['Projection', 'ValueProjection', 'FilterProjection', 'Flatten']);

function isProjection(node: Node): boolean {
  return PROJECTIONS.has(node.type) || (node.type === 'Pipe' && isProjection(child(node, 1)));
}

/** Unknown functions, wrong argument counts and zero slice steps are template errors, found before any message. */
function check(node: Node): void {
  if (node.type === 'Function') {
    if (!Object.hasOwn(FUNCTIONS, node.name!)) throw new SyntaxError(`JMESPath: unknown function ${node.name}()`);
    const def = FUNCTIONS[node.name!]!;
    const count = node.children!.length;
    if (count < def.min || count > def.max) {
      const expected = def.max === Infinity ? `at least ${def.min}` : String(def.min);
      throw new SyntaxError(`JMESPath: ${node.name}() takes ${expected} argument(s), got ${count}`);
    }
  }
  if (node.type === 'Slice' && node.children![2] === 0) throw new SyntaxError('JMESPath: slice step cannot be 0');
  for (const c of node.children ?? []) if (typeof c === 'object' && c !== null) check(c);
  if (node.type === 'KeyValuePair') check(node.value as Node);
}

function child(node: Node, i: number): Node {
  return node.children![i] as Node;
}

/** JMESPath falsiness: null, false, and empty strings, arrays and objects. */
function isFalse(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return isPlainObject(v) && Object.keys(v).length === 0;
}

function visit(node: Node, value: unknown): unknown {
  switch (node.type) {
    case 'Field':
      return isPlainObject(value) && Object.hasOwn(value, node.name!) ? (value[node.name!] ?? null) : null;
    case 'Subexpression': {
      const left = visit(child(node, 0), value);
      return left === null ? null : visit(child(node, 1), left);
    }
    case 'IndexExpression':
      return visit(child(node, 1), visit(child(node, 0), value));
    case 'Index': {
      if (!Array.isArray(value)) return null;
      const i = node.value as number;
      return value[i < 0 ? value.length + i : i] ?? null;
    }
    case 'Slice':
      return Array.isArray(value) ? slice(value, node.children as (number | null)[]) : null;
    case 'Projection': {
      const base = visit(child(node, 0), value);
      return Array.isArray(base) ? collect(base, child(node, 1)) : null;
    }
    case 'ValueProjection': {
      const base = visit(child(node, 0), value);
      return isPlainObject(base) ? collect(Object.values(base), child(node, 1)) : null;
    }
    case 'FilterProjection': {
      const base = visit(child(node, 0), value);
      if (!Array.isArray(base)) return null;
      return collect(
        base.filter((item) => !isFalse(visit(child(node, 2), item))),
        child(node, 1),
      );
    }
    case 'Flatten': {
      const base = visit(child(node, 0), value);
      return Array.isArray(base) ? base.flatMap((item) => (Array.isArray(item) ? item : [item])) : null;
    }
    case 'Comparator':
      return comparator(node.name!, visit(child(node, 0), value), visit(child(node, 1), value));
    case 'Identity':
    case 'Current':
      return value ?? null;
    case 'MultiSelectList':
      return value === null ? null : node.children!.map((c) => visit(c as Node, value));
    case 'MultiSelectHash':
      if (value === null) return null;
      return Object.fromEntries(node.children!.map((c) => [(c as Node).name!, visit((c as Node).value as Node, value)]));
    case 'OrExpression': {
      const left = visit(child(node, 0), value);
      return isFalse(left) ? visit(child(node, 1), value) : left;
    }
    case 'AndExpression': {
      const left = visit(child(node, 0), value);
      return isFalse(left) ? left : visit(child(node, 1), value);
    }
    case 'NotExpression':
      return isFalse(visit(child(node, 0), value));
    case 'Literal':
      return node.value;
    case 'Pipe':
      return visit(child(node, 1), visit(child(node, 0), value));
    case 'ExpressionReference': {
      const ref = child(node, 0);
      return { expref: (v: unknown) => visit(ref, v) } satisfies Expref;
    }
    case 'Function':
      return FUNCTIONS[node.name!]!.call(node.children!.map((c) => visit(c as Node, value)));
    default:
      throw new SyntaxError(`JMESPath: unsupported node ${node.type}`);
  }
}

/** Projections drop null results, as the specification says. */
function collect(items: unknown[], right: Node): unknown[] {
  const out: unknown[] = [];
  for (const item of items) {
    const r = visit(right, item);
    if (r !== null) out.push(r);
  }
  return out;
}

/** Ordering comparisons are defined for numbers only; anything else yields null. */
function comparator(op: string, a: unknown, b: unknown): unknown {
  if (op === 'EQ') return deepEqual(a, b);
  if (op === 'NE') return !deepEqual(a, b);
  if (typeof a !== 'number' || typeof b !== 'number') return null;
  if (op === 'LT') return a < b;
  if (op === 'LTE') return a <= b;
  if (op === 'GT') return a > b;
  return a >= b;
}

function slice(items: unknown[], [start, stop, step]: (number | null)[]): unknown[] {
  const n = items.length;
  const s = step ?? 1;
  const cap = (i: number) => (i < 0 ? Math.max(i + n, s < 0 ? -1 : 0) : Math.min(i, s < 0 ? n - 1 : n));
  const from = start === null || start === undefined ? (s < 0 ? n - 1 : 0) : cap(start);
  const to = stop === null || stop === undefined ? (s < 0 ? -1 : n) : cap(stop);
  const out: unknown[] = [];
  for (let i = from; s > 0 ? i < to : i > to; i += s) out.push(items[i]);
  return out;
}
