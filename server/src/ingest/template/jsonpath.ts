import { parseJsonPath, type Filter, type Operand, type Path, type Selector } from './jsonpath-parser.ts';
import { deepEqual, isPlainObject } from './json.ts';

/**
 * Evaluates parsed JSONPath with Json.NET's semantics: results in document order, own properties
 * only (no prototype members), and `..[?(…)]` testing each node itself including the root, which
 * is what lets MedTech's `$..[?(@heartRate)]` match a message whose top level holds `heartRate`.
 */

export interface JsonPath {
  /** Every token the path selects, in document order. */
  select(data: unknown): unknown[];
}

export function compileJsonPath(source: string): JsonPath {
  const path = parseJsonPath(source);
  return { select: (data) => run(path, data, data) };
}

function run(path: Path, root: unknown, current: unknown): unknown[] {
  let nodes = [path.root === '$' ? root : current];
  for (const segment of path.segments) {
    const next: unknown[] = [];
    for (const node of nodes) {
      if (!segment.scan) apply(segment.selector, node, root, next);
      else if (segment.selector.kind === 'filter') scanFilter(segment.selector.test, node, root, next);
      else if (segment.selector.kind === 'name' || segment.selector.kind === 'wildcard') scanMembers(segment.selector, node, next);
      else for (const d of descendantsAndSelf(node)) apply(segment.selector, d, root, next);
    }
    nodes = next;
  }
  return nodes;
}

function children(node: unknown): unknown[] {
  if (Array.isArray(node)) return node;
  if (isPlainObject(node)) return Object.values(node);
  return [];
}

/** The node and every node below it, in document order (a plain walk: a generator costs more than the matching). */
function descendantsAndSelf(node: unknown, out: unknown[] = []): unknown[] {
  out.push(node);
  for (const child of children(node)) descendantsAndSelf(child, out);
  return out;
}

/** `..name` / `..*`: matching members at any depth, each yielded before its own subtree. */
function scanMembers(selector: Selector & { kind: 'name' | 'wildcard' }, node: unknown, out: unknown[]): void {
  const entries: [string | number, unknown][] = Array.isArray(node)
    ? node.map((v, i) => [i, v])
    : isPlainObject(node)
      ? Object.entries(node)
      : [];
  for (const [key, value] of entries) {
    if (selector.kind === 'wildcard' || (typeof key === 'string' && selector.names.includes(key))) out.push(value);
    scanMembers(selector, value, out);
  }
}

function scanFilter(test: Filter, node: unknown, root: unknown, out: unknown[]): void {
  for (const d of descendantsAndSelf(node)) if (matches(test, d, root)) out.push(d);
}

function apply(selector: Selector, node: unknown, root: unknown, out: unknown[]): void {
  switch (selector.kind) {
    case 'name':
      if (isPlainObject(node)) for (const name of selector.names) if (Object.hasOwn(node, name)) out.push(node[name]);
      return;
    case 'wildcard':
      out.push(...children(node));
      return;
    case 'index':
      if (Array.isArray(node)) for (const i of selector.indexes) if (i < node.length) out.push(node[i]);
      return;
    case 'slice':
      if (Array.isArray(node)) out.push(...slice(node, selector));
      return;
    case 'filter':
      for (const child of children(node)) if (matches(selector.test, child, root)) out.push(child);
  }
}

function slice(items: unknown[], s: { start?: number; end?: number; step?: number }): unknown[] {
  const n = items.length;
  const step = s.step ?? 1;
  const clamp = (i: number) => (i < 0 ? Math.max(n + i, step < 0 ? -1 : 0) : Math.min(i, step < 0 ? n - 1 : n));
  const start = s.start === undefined ? (step < 0 ? n - 1 : 0) : clamp(s.start);
  const end = s.end === undefined ? (step < 0 ? -1 : n) : clamp(s.end);
  const out: unknown[] = [];
  for (let i = start; step > 0 ? i < end : i > end; i += step) out.push(items[i]);
  return out;
}

function matches(test: Filter, node: unknown, root: unknown): boolean {
  switch (test.kind) {
    case 'and':
      return matches(test.left, node, root) && matches(test.right, node, root);
    case 'or':
      return matches(test.left, node, root) || matches(test.right, node, root);
    case 'exists':
      return run(test.path, root, node).length > 0;
    case 'compare': {
      const left = operand(test.left, node, root);
      const right = operand(test.right, node, root);
      return left.some((l) => right.some((r) => compare(test.op, l, r)));
    }
  }
}

function operand(op: Operand, node: unknown, root: unknown): unknown[] {
  return op.kind === 'literal' ? [op.value] : run(op.path, root, node);
}

/** Json.NET compares like with like: no string/number coercion; ordering only for numbers and strings. */
function compare(op: string, a: unknown, b: unknown): boolean {
  if (op === '==') return deepEqual(a, b);
  if (op === '!=') return !deepEqual(a, b);
  const comparable = (typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string');
  if (!comparable) return false;
  const x = a as number | string;
  const y = b as number | string;
  return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y;
}
