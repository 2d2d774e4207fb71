import { getResourceTypeList, getSearchParams, isKnownResourceType, type SearchParam } from '../../definitions.ts';
import { badRequest, notSupported } from '../../fhir/outcome.ts';
import { parseDate, parseNumber, splitPrefix } from './values.ts';

/**
 * A parsed FHIR search: the URL's parameters checked against the type's SearchParameters, so that
 * everything later stages see is known to be well-formed.
 */
export interface SearchQuery {
  resourceType: string;
  /** AND of filters; each filter ORs its values. */
  filters: Filter[];
  sort: SortKey[];
  count: number;
  cursor?: string;
  total?: 'none' | 'estimate' | 'accurate';
  summary?: 'true' | 'text' | 'data' | 'count' | 'false';
  elements?: string[];
  include: IncludeSpec[];
  revinclude: IncludeSpec[];
  /** Parameters ignored under `Prefer: handling=lenient`, as given: reported back to the client. */
  ignored: [key: string, value: string][];
}

export type Filter =
  | { kind: 'param'; param: SearchParam; modifier?: string; values: string[] }
  | { kind: 'id'; modifier?: string; values: string[] }
  | { kind: 'lastUpdated'; modifier?: string; values: string[] }
  | { kind: 'chain'; param: SearchParam; targets: string[]; inner: Filter[] }
  | { kind: 'has'; sourceType: string; param: SearchParam; inner: Filter };

export interface SortKey { code: string; param?: SearchParam; descending: boolean }
export interface IncludeSpec { sourceType: string; params: SearchParam[]; targetType?: string; iterate: boolean }

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;

/** Result parameters that are not filters; `_format`/`_pretty` are handled by the HTTP layer. */
const RESULT_PARAMS = new Set(['_sort', '_count', '_cursor', '_total', '_summary', '_elements', '_include', '_revinclude', '_format', '_pretty']);
const MAX_CHAIN_DEPTH = 4;

export function parseSearch(resourceType: string, params: URLSearchParams, lenient = false): SearchQuery {
  const query: SearchQuery = { resourceType, filters: [], sort: [], count: DEFAULT_COUNT, include: [], revinclude: [], ignored: [] };
  for (const [key, value] of params) {
    // an empty value (`name=`) is ignored, as servers commonly do, rather than matching everything
    if (value === '') continue;
    try {
      if (RESULT_PARAMS.has(key.split(':')[0])) parseResultParam(query, key, value);
      else query.filters.push(parseFilter(resourceType, key, value, 0));
    } catch (err) {
      if (!lenient) throw err;
      query.ignored.push([key, value]);
    }
  }
  return query;
}

/**
 * A search across types (system level): `_type` (all types when absent) and one query per type,
 * sharing every other parameter. A parameter applies only if every searched type has it, so that
 * lenient handling ignores it for all of them alike rather than filtering some types and not others.
 */
export function parseSystemSearch(params: URLSearchParams, lenient = false): SearchQuery[] {
  const listed = params.getAll('_type').flatMap(splitValues).map((t) => t.trim()).filter(Boolean);
  for (const t of listed) if (!isKnownResourceType(t)) throw badRequest(`Unknown resource type "${t}" in _type`, '_type');
  const used = [...params.keys()].map((k) => k.split(/[.:]/)[0]).filter((code) => META_PARAMS.has(code));
  const types = listed.length ? [...new Set(listed)] : getResourceTypeList().filter((t) => used.every((code) => getSearchParams(t).has(code)));
  const shared = new URLSearchParams();
  const ignored: [string, string][] = [];
  for (const [key, value] of params) {
    if (key === '_type') continue;
    try {
      for (const type of types) parseSearch(type, new URLSearchParams([[key, value]]));
      shared.append(key, value);
    } catch (err) {
      if (!lenient) throw err;
      ignored.push([key, value]);
    }
  }
  const queries = types.map((type) => ({ ...parseSearch(type, shared), ignored }));
  // the branches of one UNION must agree on each sort key's SQL type
  queries[0].sort.forEach((key, i) => {
    if (queries.some((q) => (q.sort[i].param?.type ?? q.sort[i].code) !== (key.param?.type ?? key.code))) {
      throw badRequest(`_sort "${key.code}" is not of one type in every type searched`, '_sort');
    }
  });
  return queries;
}

/** R4 defines these for every type; the store indexes them on all but Binary, which a search of all types then leaves out. */
const META_PARAMS = new Set(['_tag', '_profile', '_security', '_source']);

function parseResultParam(query: SearchQuery, key: string, value: string): void {
  const [base, modifier] = key.split(':');
  switch (base) {
    case '_count': {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw badRequest(`_count must be a non-negative integer, not "${value}"`, '_count');
      query.count = Math.min(n, MAX_COUNT);
      break;
    }
    case '_cursor':
      query.cursor = value;
      break;
    case '_total':
      if (value !== 'none' && value !== 'estimate' && value !== 'accurate') throw badRequest(`_total must be none, estimate or accurate`, '_total');
      query.total = value;
      break;
    case '_summary':
      if (!['true', 'text', 'data', 'count', 'false'].includes(value)) throw badRequest(`_summary must be true, text, data, count or false`, '_summary');
      query.summary = value as SearchQuery['summary'];
      break;
    case '_elements':
      query.elements = value.split(',').map((e) => e.trim()).filter(Boolean);
      break;
    case '_sort':
      for (const item of value.split(',').filter(Boolean)) query.sort.push(parseSortKey(query.resourceType, item));
      break;
    case '_include':
    case '_revinclude': {
      if (modifier && modifier !== 'iterate' && modifier !== 'recurse') throw badRequest(`Unknown modifier :${modifier} on ${base}`, key);
      const spec = parseInclude(query.resourceType, value, Boolean(modifier), key);
      (base === '_include' ? query.include : query.revinclude).push(spec);
      break;
    }
  }
}

function parseSortKey(resourceType: string, item: string): SortKey {
  const descending = item.startsWith('-');
  const code = descending ? item.slice(1) : item;
  if (code === '_id' || code === '_lastUpdated') return { code, descending };
  const param = getSearchParams(resourceType).get(code);
  if (!param) throw badRequest(`Unknown sort parameter "${code}" for ${resourceType}`, '_sort');
  if (param.type === 'composite') throw notSupported(`Sorting by composite parameter "${code}" is not supported`, '_sort');
  return { code, param, descending };
}

/**
 * `Source:param[:Target]`, `Source:*`, or for `_include` `*` (every reference of the searched type).
 * A bare `*` for `_revinclude` would mean every reference parameter of every type: refused, as it
 * would take a query per such parameter for each page.
 */
function parseInclude(resourceType: string, value: string, iterate: boolean, key: string): IncludeSpec {
  if (value === '*' && key.startsWith('_revinclude')) throw badRequest(`${key}=* is not supported: name the referring type, as in ${key}=Observation:*`, key);
  const [sourceType, code, targetType] = value === '*' ? [resourceType, '*'] : value.split(':');
  if (!sourceType || !isKnownResourceType(sourceType)) throw badRequest(`Unknown resource type in ${key}=${value}`, key);
  if (targetType !== undefined && !isKnownResourceType(targetType)) throw badRequest(`Unknown target type in ${key}=${value}`, key);
  const refs = [...getSearchParams(sourceType).values()].filter((p) => p.type === 'reference');
  const params = code === '*' ? refs : refs.filter((p) => p.code === code);
  if (params.length === 0) throw badRequest(`Unknown reference parameter in ${key}=${value}`, key);
  return { sourceType, params, targetType, iterate };
}

/** Parses one `key=value` filter, including chains (`subject:Patient.name`) and `_has`. */
export function parseFilter(resourceType: string, key: string, value: string, depth: number): Filter {
  if (depth > MAX_CHAIN_DEPTH) throw badRequest(`Chain too deep in "${key}"`, key);
  if (key.startsWith('_has:')) {
    const [, sourceType, refCode, ...rest] = key.split(':');
    if (!sourceType || !isKnownResourceType(sourceType)) throw badRequest(`Unknown resource type in "${key}"`, key);
    const param = getSearchParams(sourceType).get(refCode ?? '');
    if (!param || param.type !== 'reference') throw badRequest(`Unknown reference parameter "${refCode}" on ${sourceType} in "${key}"`, key);
    if (rest.length === 0) throw badRequest(`_has needs a search parameter after the reference in "${key}"`, key);
    return { kind: 'has', sourceType, param, inner: parseFilter(sourceType, rest.join(':'), value, depth + 1) };
  }
  const dot = key.indexOf('.');
  const head = dot < 0 ? key : key.slice(0, dot);
  const [code, modifier, extra] = head.split(':');
  if (extra !== undefined) throw badRequest(`Malformed parameter "${key}"`, key);
  // empty items of a list (`male,`) would match everything as a string prefix: they are dropped
  const values = splitValues(value).filter((v) => v !== '');
  if (values.length === 0) throw badRequest(`"${key}" has no value`, key);
  if (code === '_id' || code === '_lastUpdated') {
    if (dot >= 0) throw badRequest(`${code} cannot be chained`, key);
    if (modifier && modifier !== 'missing' && (modifier !== 'not' || code !== '_id')) throw badRequest(`Unknown modifier :${modifier} on ${code}`, key);
    if (modifier === 'missing') checkMissing(values, key);
    else if (code === '_lastUpdated') for (const v of values) parseDate(splitPrefix(v).rest, key);
    return { kind: code === '_id' ? 'id' : 'lastUpdated', modifier, values };
  }
  const param = getSearchParams(resourceType).get(code);
  if (!param) throw badRequest(`Unknown search parameter "${code}" for ${resourceType}`, key);
  if (dot >= 0) {
    if (param.type !== 'reference') throw badRequest(`"${code}" is not a reference parameter and cannot be chained`, key);
    const rest = key.slice(dot + 1);
    const candidates = modifier ? [modifier] : param.targets.length ? [...param.targets] : [];
    if (modifier && !isKnownResourceType(modifier)) throw badRequest(`Unknown resource type :${modifier} in "${key}"`, key);
    const targets = candidates.filter((t) => isKnownResourceType(t) && chainable(t, rest));
    if (targets.length === 0) throw badRequest(`No target type of "${code}" has the chained parameter in "${key}"`, key);
    return { kind: 'chain', param, targets, inner: targets.map((t) => parseFilter(t, rest, value, depth + 1)) };
  }
  checkModifier(param, modifier, key);
  if (modifier === 'missing') checkMissing(values, key);
  else for (const v of values) checkValue(param, modifier, v, key);
  return { kind: 'param', param, modifier, values };
}

function checkMissing(values: string[], key: string): void {
  if (values.length !== 1 || (values[0] !== 'true' && values[0] !== 'false')) throw badRequest(`:missing takes true or false`, key);
}

/** Rejects values the SQL stage could not read, so that lenient handling can ignore them instead. */
function checkValue(param: SearchParam, modifier: string | undefined, value: string, key: string): void {
  switch (param.type) {
    case 'date':
      parseDate(splitPrefix(value).rest, key);
      break;
    case 'number':
      parseNumber(splitPrefix(value).rest, key);
      break;
    case 'quantity':
      parseNumber(splitPrefix(value.split('|')[0]).rest, key);
      break;
    case 'token':
      if (modifier === 'of-type' && value.split('|').length !== 3) throw badRequest(`:of-type takes system|code|value, not "${value}"`, key);
      break;
    case 'composite': {
      const parts = value.split('$');
      const components = param.components ?? [];
      if (parts.length !== components.length) throw badRequest(`Composite "${param.code}" needs ${components.length} $-separated values`, key);
      components.forEach((c, i) => checkValue(c.param, undefined, parts[i], key));
      break;
    }
  }
}

function chainable(type: string, rest: string): boolean {
  const code = rest.split(/[.:]/)[0];
  return code === '_id' || code === '_lastUpdated' || code === '_has' || getSearchParams(type).has(code);
}

const MODIFIERS: Record<string, string[]> = {
  token: ['missing', 'not', 'text', 'of-type'],
  string: ['missing', 'exact', 'contains'],
  uri: ['missing', 'below', 'above'],
  reference: ['missing', 'identifier'],
  date: ['missing'],
  number: ['missing'],
  quantity: ['missing'],
  composite: ['missing'],
};

function checkModifier(param: SearchParam, modifier: string | undefined, key: string): void {
  if (modifier === undefined) return;
  if (MODIFIERS[param.type]?.includes(modifier)) return;
  // reference parameters take a resource type as modifier (`subject:Patient=123`)
  if (param.type === 'reference' && isKnownResourceType(modifier)) return;
  throw badRequest(`Modifier :${modifier} is not supported on ${param.type} parameter "${param.code}"`, key);
}

/** Comma separates OR-ed values; `\,` is a literal comma. */
export function splitValues(value: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      current += value[++i];
    } else if (c === ',') {
      out.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  out.push(current);
  return out;
}
