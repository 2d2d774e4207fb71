import { parseFhirPath, toTypedValue, tryGetDataType, type Atom, type AtomContext, type TypedValue } from '@medplum/core';
import type {
  Address, CodeableConcept, Coding, ContactPoint, HumanName, Identifier, Period, Quantity, Reference, Resource, Timing,
} from '@medplum/fhirtypes';
import { getPatientCompartmentParams, getSearchParams, type SearchParam } from '../definitions.ts';
import { COMPARTMENTS, DATE_RANGES, REFERENCE_IDENTIFIER, STRING_EXACT, TOKEN_TEXT, paramColumns } from './columns.ts';
import { evaluate } from './compiled-path.ts';
import { dateRange } from './dates.ts';
import { normalizeString } from './strings.ts';
import { canonicalQuantity } from './ucum.ts';

/** Column name → value, ready to bind as SQL parameters. */
export type IndexRow = Record<string, unknown>;

export interface QuantityValue { v: number; u: string[] }
export interface DateValue { s: string; e: string }

type Evaluate = (atom: Atom, context: AtomContext, input: TypedValue[]) => TypedValue[];

/**
 * Evaluates every search parameter of the resource's type with FHIRPath (compiled where it is a
 * plain path, see compiled-path.ts) and turns the results into the typed column values that the
 * search SQL queries. `content`, the resource's JSON when the caller has it, saves serialising it again.
 */
export function extractIndex(resource: Resource, baseUrl: string, content?: string): IndexRow {
  return indexWith(evaluate, resource, baseUrl, content);
}

/** The columns of these search parameters alone (the others left null): what the subscription index looks up. */
export function extractParams(resource: Resource, baseUrl: string, codes: Pick<ReadonlySet<string>, 'has'>, content?: string): IndexRow {
  return indexWith(evaluate, resource, baseUrl, content, codes);
}

/** The same row with every expression run by medplum's FHIRPath evaluator: what compiled paths must reproduce. */
export function extractIndexByFhirPath(resource: Resource, baseUrl: string): IndexRow {
  return indexWith((atom, context, input) => atom.eval(context, input), resource, baseUrl);
}

function indexWith(evaluate: Evaluate, resource: Resource, baseUrl: string, content?: string, only?: Pick<ReadonlySet<string>, 'has'>): IndexRow {
  const root = toTypedValue(withRelativeReferences(resource, baseUrl, content));
  const context = { variables: { '%resource': root, '%rootResource': root } };
  const params = getSearchParams(resource.resourceType);
  const row: IndexRow = { ...emptyRow(params) };
  const tokenText: string[] = [];
  const stringExact: string[] = [];
  const refIdentifiers: string[] = [];
  const refsByParam = new Map<string, string[]>();
  let parts: PartCache | undefined;
  let dateRanges: Record<string, DateValue[]> | undefined;

  for (const param of params.values()) {
    if (only && !only.has(param.code)) continue;
    const items: TypedValue[] = param.self ? [root] : [];
    if (hasAnyRoot(resource, param)) {
      for (const atom of param.expression) for (const item of evaluate(atom, context, [root])) items.push(item);
    }
    // most parameters of a resource are empty: their columns stay null, with nothing to compute
    if (items.length === 0) continue;
    switch (param.type) {
      case 'token': {
        const values = collect(items, (item) => tokens(item, tokenText, param.code));
        row[param.code] = nonEmpty(unique(values));
        break;
      }
      case 'string': {
        const raw = collect(items, strings);
        for (const s of raw) stringExact.push(`${param.code}|${s}`);
        row[param.code] = nonEmpty(unique(raw.map(normalizeString)));
        break;
      }
      case 'uri':
        row[param.code] = nonEmpty(unique(collect(items, uris)));
        break;
      case 'reference': {
        const refs = unique(collect(items, (item) => references(item, baseUrl, refIdentifiers, param.code)));
        refsByParam.set(param.code, refs);
        row[param.code] = param.array ? nonEmpty(refs) : (refs[0] ?? null);
        break;
      }
      case 'date': {
        const ranges = collect(items, dates);
        row[`${param.code}_start`] = ranges.length ? ranges.reduce((a, r) => (r.s < a ? r.s : a), ranges[0].s) : null;
        row[`${param.code}_end`] = ranges.length ? ranges.reduce((a, r) => (r.e > a ? r.e : a), ranges[0].e) : null;
        // several ranges (a Timing's events, repeated elements) are searched one by one: their
        // span would take two dates a week apart for a week-long range
        const distinct = uniqueRanges(ranges);
        if (distinct.length > 1) (dateRanges ??= {})[param.code] = distinct;
        break;
      }
      case 'number':
        row[param.code] = nonEmpty(items.map((i) => Number(i.value)).filter(Number.isFinite));
        break;
      case 'quantity': {
        const qs = collect(items, quantities);
        row[param.code] = nonEmpty(collect(qs, (q) => q.u.map(() => q.v)));
        row[`${param.code}_unit`] = nonEmpty(collect(qs, (q) => q.u));
        break;
      }
      case 'composite':
        row[param.code] = composite(param, items, context, baseUrl, evaluate, (parts ??= new Map()));
        break;
    }
  }
  row[TOKEN_TEXT] = nonEmpty(unique(tokenText));
  row[STRING_EXACT] = nonEmpty(unique(stringExact));
  row[REFERENCE_IDENTIFIER] = nonEmpty(unique(refIdentifiers));
  row[COMPARTMENTS] = nonEmpty(patientCompartments(resource, refsByParam));
  row[DATE_RANGES] = dateRanges ? JSON.stringify(dateRanges) : null;
  return row;
}

function uniqueRanges(ranges: DateValue[]): DateValue[] {
  const seen = new Set<string>();
  return ranges.filter((r) => !seen.has(`${r.s}/${r.e}`) && seen.add(`${r.s}/${r.e}`));
}

const emptyRows = new WeakMap<ReadonlyMap<string, SearchParam>, IndexRow>();
/** Every column of the parameters null: the row each extraction starts from. */
function emptyRow(params: ReadonlyMap<string, SearchParam>): IndexRow {
  let row = emptyRows.get(params);
  if (!row) {
    row = Object.fromEntries([...params.values()].flatMap(paramColumns).map((c) => [c.name, null]));
    emptyRows.set(params, row);
  }
  return row;
}

/**
 * FHIRPath's resolve() reads only `Type/id`, so `patient` (`subject.where(resolve() is Patient)`)
 * would miss a reference written as this server's absolute URL: those are made relative first.
 */
function withRelativeReferences(resource: Resource, baseUrl: string, content?: string): Resource {
  const json = content ?? JSON.stringify(resource);
  const absolute = `"reference":${JSON.stringify(`${baseUrl}/fhir/R4/`).slice(0, -1)}`;
  return json.includes(absolute) ? (JSON.parse(json.replaceAll(absolute, '"reference":"')) as Resource) : resource;
}

function patientCompartments(resource: Resource, refsByParam: Map<string, string[]>): string[] {
  const result = new Set<string>();
  if (resource.resourceType === 'Patient' && resource.id) result.add(`Patient/${resource.id}`);
  for (const code of getPatientCompartmentParams(resource.resourceType)) {
    for (const ref of refsByParam.get(code) ?? []) {
      if (ref.startsWith('Patient/')) result.add(ref);
    }
  }
  return [...result];
}

/**
 * Component values by item (its JSON value) and component: Observation's eight composites read
 * `code` of the same items again and again.
 */
type PartCache = Map<unknown, Map<string, unknown[]>>;

function composite(param: SearchParam, items: TypedValue[], context: AtomContext, baseUrl: string, evaluate: Evaluate, cache: PartCache): string | null {
  const tuples: unknown[][] = [];
  for (const item of items) {
    // keyed by the JSON object; a primitive (a damaged resource's) is not worth keeping
    let byPart = typeof item.value === 'object' ? cache.get(item.value) : undefined;
    if (!byPart) {
      byPart = new Map();
      if (typeof item.value === 'object') cache.set(item.value, byPart);
    }
    const tuple: unknown[][] = [];
    const keys = componentKeys(param);
    for (const [i, { param: part, expression }] of (param.components ?? []).entries()) {
      const key = keys[i];
      let values = byPart.get(key);
      if (!values) {
        values = componentValues(part, evaluate(relativeAtom(expression), context, [item]), baseUrl);
        byPart.set(key, values);
      }
      tuple.push(values);
    }
    // a tuple needs a value for every component
    if (tuple.every((values) => values.length > 0)) tuples.push(tuple);
  }
  return tuples.length ? JSON.stringify(tuples) : null;
}

const keysByParam = new WeakMap<SearchParam, string[]>();
/** What a component's values depend on: its type and expression. */
function componentKeys(param: SearchParam): string[] {
  let keys = keysByParam.get(param);
  if (!keys) {
    keys = (param.components ?? []).map(({ param: part, expression }) => `${part.type}|${expression}`);
    keysByParam.set(param, keys);
  }
  return keys;
}

function componentValues(part: SearchParam, values: TypedValue[], baseUrl: string): unknown[] {
  switch (part.type) {
    case 'token': return unique(collect(values, (v) => tokens(v, [], part.code)));
    case 'string': return unique(collect(values, strings).map(normalizeString));
    case 'uri': return unique(collect(values, uris));
    case 'reference': return unique(collect(values, (v) => references(v, baseUrl, [], part.code)));
    case 'date': return collect(values, dates);
    case 'number': return values.map((v) => Number(v.value)).filter(Number.isFinite);
    case 'quantity': return collect(values, quantities);
    case 'composite': return [];
  }
}

const relativeAtoms = new Map<string, Atom>();
function relativeAtom(expression: string): Atom {
  let atom = relativeAtoms.get(expression);
  if (!atom) {
    atom = parseFhirPath(expression);
    relativeAtoms.set(expression, atom);
  }
  return atom;
}

function tokens(item: TypedValue, text: string[], code: string): string[] {
  const v = item.value;
  if (v === undefined || v === null) return [];
  switch (item.type) {
    case 'CodeableConcept': {
      const cc = v as CodeableConcept;
      if (cc.text) text.push(`${code}|${normalizeString(cc.text)}`);
      return collect(cc.coding ?? [], (c) => coding(c, text, code));
    }
    case 'Coding':
      return coding(v as Coding, text, code);
    case 'Identifier': {
      const id = v as Identifier;
      if (id.type?.text) text.push(`${code}|${normalizeString(id.type.text)}`);
      const out = systemCode(id.system, id.value);
      if (id.value) {
        for (const t of id.type?.coding ?? []) out.push(`${t.system ?? ''}|${t.code ?? ''}|${id.value}`);
      }
      return out;
    }
    case 'ContactPoint':
      return (v as ContactPoint).value ? [(v as ContactPoint).value as string] : [];
    case 'boolean':
      return [String(v)];
    case 'Quantity': {
      const q = v as Quantity;
      return systemCode(q.system, q.code ?? q.unit);
    }
    case 'Reference':
    case 'Period':
    case 'HumanName':
    case 'Address':
      return [];
    default:
      return typeof v === 'string' || typeof v === 'number' ? systemCode(undefined, String(v)) : [];
  }
}

function coding(c: Coding, text: string[], code: string): string[] {
  if (c.display) text.push(`${code}|${normalizeString(c.display)}`);
  return systemCode(c.system, c.code);
}

/** `system|code`, bare `code` (any system) and `system|` (any code); `|code` where there is no system. */
export function systemCode(system: string | undefined, code: string | undefined): string[] {
  if (!code) return system ? [`${system}|`] : [];
  return system ? [`${system}|${code}`, code, `${system}|`] : [`|${code}`, code];
}

function strings(item: TypedValue): string[] {
  const v = item.value;
  if (v === undefined || v === null) return [];
  switch (item.type) {
    case 'HumanName': {
      const n = v as HumanName;
      return [n.text, n.family, ...(n.given ?? []), ...(n.prefix ?? []), ...(n.suffix ?? [])].filter(isString);
    }
    case 'Address': {
      const a = v as Address;
      return [a.text, ...(a.line ?? []), a.city, a.district, a.state, a.postalCode, a.country].filter(isString);
    }
    case 'CodeableConcept':
      return [(v as CodeableConcept).text, ...((v as CodeableConcept).coding ?? []).map((c) => c.display)].filter(isString);
    default:
      return typeof v === 'string' ? [v] : [];
  }
}

function uris(item: TypedValue): string[] {
  return typeof item.value === 'string' ? [item.value] : [];
}

function references(item: TypedValue, baseUrl: string, identifiers: string[], code: string): string[] {
  const v = item.value;
  if (typeof v === 'string') {
    // canonical/uri targets: match with and without the |version suffix
    const bar = v.indexOf('|');
    return bar > 0 ? [v, v.slice(0, bar)] : [v];
  }
  if (!v || item.type !== 'Reference') return [];
  const ref = v as Reference;
  if (ref.identifier?.value) {
    identifiers.push(`${code}|${ref.identifier.system ?? ''}|${ref.identifier.value}`, `${code}|${ref.identifier.value}`);
  }
  return ref.reference && !ref.reference.startsWith('#') ? [normalizeReference(ref.reference, baseUrl)] : [];
}

/** Local references are stored as `Type/id`: our own absolute URLs and version suffixes are dropped. */
export function normalizeReference(reference: string, baseUrl: string): string {
  let ref = reference;
  const fhirBase = `${baseUrl}/fhir/R4/`;
  if (ref.startsWith(fhirBase)) ref = ref.slice(fhirBase.length);
  const history = ref.indexOf('/_history/');
  if (history > 0 && !ref.includes('://')) ref = ref.slice(0, history);
  return ref;
}

function dates(item: TypedValue): DateValue[] {
  const v = item.value;
  if (v === undefined || v === null) return [];
  switch (item.type) {
    case 'Period': {
      const p = v as Period;
      if (!p.start && !p.end) return [];
      // a missing (or unreadable) bound leaves the period open on that side
      return [{ s: (p.start && dateRange(p.start).s) || '-infinity', e: (p.end && dateRange(p.end).e) || 'infinity' }];
    }
    case 'Timing': {
      const t = v as Timing;
      const events = (t.event ?? []).map(dateRange).filter((r) => r.s);
      const bounds = t.repeat?.boundsPeriod;
      if (bounds) events.push(...dates({ type: 'Period', value: bounds }));
      return events;
    }
    default:
      return typeof v === 'string' ? [dateRange(v)].filter((r) => r.s) : [];
  }
}

function quantities(item: TypedValue): QuantityValue[] {
  const q = item.value as Quantity | undefined;
  if (!q || typeof q !== 'object' || typeof q.value !== 'number') return [];
  const units = unique([
    ...(q.code ? [`${q.system ?? ''}|${q.code}`, `|${q.code}`] : []),
    ...(q.unit ? [`|${q.unit}`] : []),
    '|',
  ]);
  const out: QuantityValue[] = [{ v: q.value, u: units }];
  const canonical = canonicalQuantity(q);
  if (canonical) out.push({ v: canonical.value, u: [`${canonical.system}|${canonical.code}`] });
  return out;
}

interface Root { first: string; second?: string; choice: boolean }
const rootsByParam = new WeakMap<SearchParam, Root[]>();

/**
 * Whether the resource has one of the element paths (choice types by prefix: value → valueQuantity).
 * Only a first step that is no plain element of the type can be a choice: the others skip the scan.
 */
function hasAnyRoot(resource: Resource, param: SearchParam): boolean {
  if (param.roots.length === 0) return true;
  let roots = rootsByParam.get(param);
  if (!roots) {
    const elements = tryGetDataType(resource.resourceType)?.elements ?? {};
    roots = param.roots.map(([first, second]) => ({ first, second, choice: !elements[first] }));
    rootsByParam.set(param, roots);
  }
  const r = resource as unknown as Record<string, unknown>;
  return roots.some(({ first, second, choice }) => {
    const value = r[first] ?? (choice ? choiceValue(r, first) : undefined);
    if (value === undefined) return false;
    if (second === undefined) return true;
    return (Array.isArray(value) ? value : [value]).some((v) => {
      const o = v as Record<string, unknown> | null;
      return o !== null && typeof o === 'object' && (o[second] ?? choiceValue(o, second)) !== undefined;
    });
  });
}

/** The value of the choice element `name[x]` present (an object built in code may hold `valueString: undefined` too). */
function choiceValue(r: Record<string, unknown>, name: string): unknown {
  for (const key in r) {
    if (key.length > name.length && key.startsWith(name) && key.charCodeAt(name.length) < 91 && r[key] != null) return r[key];
  }
  return undefined;
}

const isString = (s: unknown): s is string => typeof s === 'string' && s.length > 0;
function unique<T>(values: T[]): T[] {
  if (values.length < 2) return values;
  if (values.length > 16) return [...new Set(values)];
  // a few values (the common case): a scan beats building a Set
  const out: T[] = [];
  for (const v of values) if (!out.includes(v)) out.push(v);
  return out;
}
/** `items.flatMap(fn)` (throwing alike on what is no array), without flatMap's cost on the hot path. */
function collect<T, U>(items: readonly T[], fn: (item: T) => readonly U[]): U[] {
  if (!Array.isArray(items)) throw new TypeError(`${typeof items} is not an array`);
  const out: U[] = [];
  for (const item of items) for (const value of fn(item)) out.push(value);
  return out;
}
const nonEmpty = <T>(values: T[]): T[] | null => (values.length ? values : null);
