import type { Request, Response } from 'express';
import type { Observation, ObservationComponent, Parameters, ParametersParameter, Quantity } from '@medplum/fhirtypes';
import { normalizeReference } from '../../store/extract.ts';
import { Params, filterSql } from '../../store/search/conditions.ts';
import type { Restriction } from '../../store/search/execute.ts';
import { parseFilter, splitValues } from '../../store/search/query.ts';
import { UCUM, canonicalQuantity } from '../../store/ucum.ts';
import type { FhirContext } from '../context.ts';
import { badRequest, notSupported } from '../outcome.ts';
import { sendJson } from '../respond.ts';
import { checkKnown, operationParams, parseBoolean, parsePeriod, positiveInt, single } from './parameters.ts';

/**
 * Observation/$stats (R4): statistics over one subject's quantity values, one `statistics`
 * Observation per code with one component per statistic, computed in SQL.
 *
 * Values come from the composite columns `code-value-quantity` (the Observation's own value) and
 * `component-code-value-quantity` (each component's), which pair every value with its codes and
 * units. A code counts an Observation's own value when the Observation has that code and a
 * component's value when the component has it; asking for a panel code (blood pressure 85354-9)
 * gives one Observation per component code of the matching panels. `has-member` Observations are
 * not followed. An Observation counts in the period when its effective time starts within it.
 *
 * Units: values of a code normally share one unit and are used as they are. When they do not, values
 * commensurable with the newest one are compared in their canonical UCUM unit and the results
 * converted back into the newest value's unit; the others are left out (they still count in
 * total-count, which counts the Observations carrying the code). std-dev and variance are the sample
 * ones; percentiles interpolate linearly (percentile_cont); skew and kurtosis are the adjusted
 * Fisher–Pearson G1 and the sample excess kurtosis G2. A statistic without a value (no data, or too
 * few values) has a `not-a-number` dataAbsentReason. Results are rounded to 12 significant digits,
 * beyond any instrument's precision, to drop floating-point noise.
 */
const STATISTICS_SYSTEM = 'http://terminology.hl7.org/CodeSystem/observation-statistics';
const DATA_ABSENT = 'http://terminology.hl7.org/CodeSystem/data-absent-reason';
const MAX_SOURCES = 1000;
const KNOWN = new Set(['subject', 'patient', 'code', 'system', 'coding', 'duration', 'period', 'statistic', 'include', 'limit']);
/** The percentiles computed in one pass: 20, 25, 40, 50, 60, 75 and 80. */
const FRACTIONS = [0.2, 0.25, 0.4, 0.5, 0.6, 0.75, 0.8];

interface Aggregate {
  grp: string;
  total: number;
  unit: string | null;
  canonical: boolean | null;
  n: number | null;
  average: number | null;
  minimum: number | null;
  maximum: number | null;
  sum: number | null;
  stddev: number | null;
  variance: number | null;
  p: number[] | null;
  m2: number | null;
  m3: number | null;
  m4: number | null;
  first_at: string | null;
  last_at: string | null;
  panel: boolean;
}

/** How a statistic changes with the unit: location values shift and scale, spreads only scale. */
export type Kind = 'count' | 'location' | 'spread' | 'variance' | 'sum' | 'shape';

interface Statistic { display: string; kind: Kind; value(a: Aggregate): number | null }

const percentile = (fraction: number) => (a: Aggregate): number | null => a.p?.[FRACTIONS.indexOf(fraction)] ?? null;

const STATISTICS: Record<string, Statistic> = {
  average: { display: 'Average', kind: 'location', value: (a) => a.average },
  maximum: { display: 'Maximum', kind: 'location', value: (a) => a.maximum },
  minimum: { display: 'Minimum', kind: 'location', value: (a) => a.minimum },
  count: { display: 'Count', kind: 'count', value: (a) => a.n ?? 0 },
  'total-count': { display: 'Total Count', kind: 'count', value: (a) => a.total },
  median: { display: 'Median', kind: 'location', value: percentile(0.5) },
  'std-dev': { display: 'Standard Deviation', kind: 'spread', value: (a) => a.stddev },
  sum: { display: 'Sum', kind: 'sum', value: (a) => a.sum },
  variance: { display: 'Variance', kind: 'variance', value: (a) => a.variance },
  '20-percent': { display: '20th Percentile', kind: 'location', value: percentile(0.2) },
  '80-percent': { display: '80th Percentile', kind: 'location', value: percentile(0.8) },
  '4-lower': { display: 'Lower Quartile', kind: 'location', value: percentile(0.25) },
  '4-upper': { display: 'Upper Quartile', kind: 'location', value: percentile(0.75) },
  '4-dev': {
    display: 'Quartile Deviation',
    kind: 'spread',
    value: (a) => (a.p ? (percentile(0.75)(a) as number) / 2 - (percentile(0.25)(a) as number) / 2 : null),
  },
  '5-1': { display: '1st Quintile', kind: 'location', value: percentile(0.2) },
  '5-2': { display: '2nd Quintile', kind: 'location', value: percentile(0.4) },
  '5-3': { display: '3rd Quintile', kind: 'location', value: percentile(0.6) },
  '5-4': { display: '4th Quintile', kind: 'location', value: percentile(0.8) },
  skew: { display: 'Skew', kind: 'shape', value: skew },
  kurtosis: { display: 'Kurtosis', kind: 'shape', value: kurtosis },
};

/** Which values: one subject's, of some codes (or all), in a period. Shared with `$timeseries`. */
export interface ValueSelection {
  subject: string;
  subjectParam: 'subject' | 'patient';
  /** `system|code` keys; empty means every code of the subject. */
  codes: string[];
  period: { start?: string; end?: string };
}

interface StatsRequest extends ValueSelection {
  statistics: string[];
  include: boolean;
  limit: number;
}

export const stats = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const input = parseRequest(operationParams(req), ctx.baseUrl);
  const { sql, params } = statsSql(input, ctx.baseUrl, res.locals.restriction as Restriction | undefined);
  const { rows, sources } = await ctx.repo.db.transaction(async (tx) => {
    const rows = await tx.query<Aggregate>(
      `${sql} SELECT t.grp, t.total, s.unit, s.canonical, s.n, s.average, s.minimum, s.maximum, s.sum, s.stddev, s.variance, s.p,
         s.m2, s.m3, s.m4, s.first_at, s.last_at,
         EXISTS (SELECT 1 FROM grouped g WHERE g.part AND g.parent @> ARRAY[t.grp] AND g.grp <> t.grp) AS panel
       FROM totals t LEFT JOIN stats s USING (grp)`,
      params.values,
    );
    const sources = input.include
      ? await tx.query<{ content: string }>(
        `${sql} SELECT t.content FROM "Observation" t WHERE t.id IN (SELECT id FROM used)
         ORDER BY t.date_start DESC NULLS LAST, t.id LIMIT ${params.add(input.limit)}::int`,
        params.values,
      )
      : [];
    return { rows, sources };
  });
  // a panel code stands for its components' codes: it has no Observation of its own unless it has values
  const byKey = new Map(rows.filter((r) => !r.panel || r.n).map((r) => [r.grp, r]));
  // requested codes in the order asked, then the panels' component codes
  const order = (k: string): number => (input.codes.includes(k) ? input.codes.indexOf(k) : input.codes.length);
  const keys = [...byKey.keys()].sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
  const parameter: ParametersParameter[] = [
    ...keys.map((k) => ({ name: 'statistics', resource: statisticsObservation(input, k, byKey.get(k)) })),
    ...sources.map((s) => ({ name: 'source', resource: JSON.parse(s.content) as Observation })),
  ];
  const result: Parameters = { resourceType: 'Parameters', parameter };
  sendJson(req, res, 200, result);
};

function parseRequest(params: URLSearchParams, baseUrl: string): StatsRequest {
  checkKnown(params, KNOWN);
  const selection = parseValueSelection(params, baseUrl, '$stats');
  const statistics = [...new Set(params.getAll('statistic').flatMap(splitValues))];
  if (statistics.length === 0) throw badRequest('$stats needs at least one statistic', 'statistic');
  for (const s of statistics) {
    if (s === 'regression') throw notSupported('statistic regression is not supported', 'statistic');
    if (!STATISTICS[s]) throw badRequest(`Unknown statistic "${s}"; see ${STATISTICS_SYSTEM}`, 'statistic');
  }
  const include = params.has('include') ? parseBoolean(single(params, 'include') as string, 'include') : false;
  const limitText = single(params, 'limit');
  const limit = limitText === undefined ? MAX_SOURCES : Math.min(positiveInt(limitText, 'limit'), MAX_SOURCES);
  return { ...selection, statistics, include, limit };
}

/** subject/patient, code+system or coding, duration (hours up to now) or period. */
export function parseValueSelection(params: URLSearchParams, baseUrl: string, operation: string): ValueSelection {
  const subjectParam = params.has('subject') ? 'subject' : 'patient';
  if (params.has('subject') && params.has('patient')) throw badRequest('Give subject or patient, not both', 'patient');
  const subjectText = single(params, subjectParam);
  if (!subjectText) throw badRequest(`${operation} needs a subject`, 'subject');
  const ref = normalizeReference(subjectText, baseUrl);
  const subject = subjectParam === 'patient' && !ref.includes('/') ? `Patient/${ref}` : ref;

  const system = single(params, 'system');
  if (system !== undefined && !isUri(system)) throw badRequest(`system must be an absolute URI, not "${system}"`, 'system');
  const plainCodes = params.getAll('code').flatMap(splitValues);
  if (plainCodes.length && !system) throw badRequest('code needs a system (or give coding=system|code)', 'system');
  if (system && !plainCodes.length) throw badRequest('system needs a code', 'code');
  if (plainCodes.some((c) => !c)) throw badRequest('Empty code', 'code');
  const codings = params.getAll('coding').flatMap(splitValues).map((c) => {
    const bar = c.indexOf('|');
    if (bar < 0 || !isUri(c.slice(0, bar)) || !c.slice(bar + 1)) throw badRequest(`coding must be system|code with an absolute URI system, not "${c}"`, 'coding');
    return c;
  });
  const codes = [...new Set([...plainCodes.map((c) => `${system}|${c}`), ...codings])];

  const duration = single(params, 'duration');
  const periodText = single(params, 'period');
  let period: StatsRequest['period'] = {};
  if (duration !== undefined) {
    const hours = Number(duration);
    if (!/^\d+(\.\d+)?$/.test(duration) || hours <= 0) throw badRequest(`duration must be a positive number of hours, not "${duration}"`, 'duration');
    const now = Date.now();
    period = { start: new Date(now - hours * 3_600_000).toISOString(), end: new Date(now).toISOString() };
  } else if (periodText !== undefined) {
    period = parsePeriod(periodText, 'period');
  }
  return { subject, subjectParam, codes, period };
}

const isUri = (s: string): boolean => /^[A-Za-z][A-Za-z0-9+.-]*:[^\s|]+$/.test(s);

/**
 * The CTEs `obs` (the subject's Observations in the period with a requested code), `grouped` (one
 * row per code group and value), `used` (the values the statistics use, in one unit), `totals` and
 * `stats` (one row per code group).
 */
export function statsSql(input: ValueSelection, baseUrl: string, restrict?: Restriction): { sql: string; params: Params } {
  const params = new Params();
  const subject = filterSql(parseFilter('Observation', input.subjectParam, input.subject, 0), 't', 'Observation', { params, baseUrl });
  const where = ['NOT t.deleted', subject, `NOT coalesce(t.status && ${params.add(['entered-in-error'])}::text[], false)`];
  const access = restrict?.('t', 'Observation', params);
  if (access) where.push(access);
  if (input.period.start) where.push(`t.date_start >= ${params.add(input.period.start)}::timestamptz`);
  if (input.period.end) where.push(`t.date_start < ${params.add(input.period.end)}::timestamptz`);
  const req = input.codes.length ? `${params.add(input.codes)}::text[]` : undefined;
  if (req) where.push(`(t.code && ${req} OR t."component-code" && ${req})`);
  // A value belongs to each requested code it carries; a panel's component that carries none of
  // them belongs to its own (first) code.
  const grouped = req
    ? `SELECT r.key AS grp, i.* FROM items i JOIN unnest(${req}) r(key) ON i.codes ? r.key
       UNION ALL
       SELECT i.codes->>0, i.* FROM items i WHERE i.part AND i.parent && ${req} AND NOT i.codes ?| ${req}`
    : `SELECT i.codes->>0 AS grp, i.* FROM items i`;
  const keys = req ? `SELECT grp FROM grouped UNION SELECT unnest(${req})` : 'SELECT DISTINCT grp FROM grouped';
  // the value as written is the one whose units list holds the bare `|`; the canonical one is marked
  const value = (condition: string): string => `SELECT (q->>'v')::numeric AS v, q->'u'->>0 AS unit FROM jsonb_array_elements(g.qs) q WHERE ${condition} LIMIT 1`;
  const canonical = `(mixed AND ref_cunit IS NOT NULL)`;
  const sql = `WITH obs AS (
      SELECT t.id, t.date_start AS at, t.code AS codes, t."component-code" AS comp_codes,
        t."code-value-quantity" AS own, t."component-code-value-quantity" AS comp
      FROM "Observation" t WHERE ${where.join(' AND ')}
    ), items AS (
      SELECT o.id, o.at, o.codes AS parent, e.tuple->0 AS codes, e.tuple->1 AS qs, false AS part
      FROM obs o CROSS JOIN LATERAL jsonb_array_elements(o.own) e(tuple)
      UNION ALL
      SELECT o.id, o.at, o.codes, e.tuple->0, e.tuple->1, true
      FROM obs o CROSS JOIN LATERAL jsonb_array_elements(o.comp) e(tuple)
    ), grouped AS (${grouped}
    ), vals AS (
      SELECT g.grp, g.id, g.at, o.v, o.unit, c.v AS cv, c.unit AS cunit FROM grouped g
      LEFT JOIN LATERAL (${value(`q->'u' ? '|'`)}) o ON true
      LEFT JOIN LATERAL (${value(`starts_with(q->'u'->>0, ${params.add(`${UCUM}|canonical:`)}::text)`)}) c ON true
    ), ref AS (
      SELECT v.*, first_value(unit) OVER w AS ref_unit, first_value(cunit) OVER w AS ref_cunit,
        min(unit) OVER (PARTITION BY grp) <> max(unit) OVER (PARTITION BY grp) AS mixed
      FROM vals v WINDOW w AS (PARTITION BY grp ORDER BY at DESC NULLS LAST, id DESC)
    ), used AS (
      SELECT grp, id, at, ref_unit, ${canonical} AS canonical, CASE WHEN ${canonical} THEN cv ELSE v END AS x
      FROM ref WHERE CASE WHEN ${canonical} THEN cunit = ref_cunit ELSE unit = ref_unit END
    ), stats AS (
      SELECT grp, min(ref_unit) AS unit, bool_or(canonical) AS canonical, count(*)::int AS n,
        avg(x)::float8 AS average, min(x)::float8 AS minimum, max(x)::float8 AS maximum, sum(x)::float8 AS sum,
        stddev_samp(x)::float8 AS stddev, var_samp(x)::float8 AS variance,
        percentile_cont(ARRAY[${FRACTIONS.join(', ')}]::float8[]) WITHIN GROUP (ORDER BY x::float8) AS p,
        avg(d * d)::float8 AS m2, avg(d * d * d)::float8 AS m3, avg(d * d * d * d)::float8 AS m4,
        min(at) AS first_at, max(at) AS last_at
      FROM (SELECT u.*, x - avg(x) OVER (PARTITION BY grp) AS d FROM used u) m GROUP BY grp
    ), keys AS (${keys}
    ), carried AS (
      SELECT DISTINCT o.id, x.grp FROM obs o CROSS JOIN LATERAL unnest(o.codes || coalesce(o.comp_codes, '{}')) x(grp)
      WHERE x.grp IN (SELECT grp FROM keys)
    ), totals AS (
      SELECT k.grp, count(c.id)::int AS total FROM keys k LEFT JOIN carried c USING (grp) GROUP BY k.grp
    )`;
  return { sql, params };
}

function statisticsObservation(input: StatsRequest, key: string, a: Aggregate | undefined): Observation {
  const bar = key.indexOf('|');
  const [system, code] = [key.slice(0, bar), key.slice(bar + 1)];
  const start = input.period.start ?? a?.first_at ?? undefined;
  const end = input.period.end ?? a?.last_at ?? undefined;
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [system ? { system, code } : { code }] },
    subject: { reference: input.subject },
    ...(start || end ? { effectivePeriod: { ...(start ? { start } : {}), ...(end ? { end } : {}) } } : {}),
    component: input.statistics.map((s) => component(s, a)),
  };
}

function component(name: string, a: Aggregate | undefined): ObservationComponent {
  const statistic = STATISTICS[name];
  const code = { coding: [{ system: STATISTICS_SYSTEM, code: name, display: statistic.display }] };
  if (statistic.kind === 'count') return { code, valueInteger: a ? (statistic.value(a) ?? 0) : 0 };
  const raw = a?.n ? statistic.value(a) : null;
  if (raw === null || !Number.isFinite(raw) || !a?.unit) {
    return { code, dataAbsentReason: { coding: [{ system: DATA_ABSENT, code: 'not-a-number', display: 'Not a Number (NaN)' }] } };
  }
  const value = round(a.canonical ? fromCanonical(statistic.kind, raw, a.unit, a.n as number) : raw);
  return { code, valueQuantity: { value, ...unitOf(statistic.kind, a.unit) } };
}

/** Values were compared in the canonical UCUM unit: back into the newest value's unit. */
export function fromCanonical(kind: Kind, value: number, unit: string, n: number): number {
  const bar = unit.indexOf('|');
  const q = (v: number): number => canonicalQuantity({ value: v, system: unit.slice(0, bar), code: unit.slice(bar + 1) })?.value as number;
  const offset = q(0);
  const factor = (q(1e6) - offset) / 1e6;
  switch (kind) {
    case 'location': return (value - offset) / factor;
    case 'spread': return value / factor;
    case 'variance': return value / factor ** 2;
    case 'sum': return (value - n * offset) / factor;
    default: return value;
  }
}

/** The unit of the values (`system|code` or `|unit`) as a Quantity's unit fields. */
function unitOf(kind: Kind, unit: string): Pick<Quantity, 'unit' | 'system' | 'code'> {
  const bar = unit.indexOf('|');
  const [system, code] = [unit.slice(0, bar), unit.slice(bar + 1)];
  if (!code || kind === 'shape') return {};
  // UCUM cannot square a unit term in general (mg/dL): the variance's unit is text only
  if (kind === 'variance') return { unit: `(${code})^2` };
  return system ? { unit: code, system, code } : { unit: code };
}

function skew(a: Aggregate): number | null {
  const n = a.n ?? 0;
  if (n < 3 || !a.m2 || a.m3 === null) return null;
  return (a.m3 / a.m2 ** 1.5) * (Math.sqrt(n * (n - 1)) / (n - 2));
}

function kurtosis(a: Aggregate): number | null {
  const n = a.n ?? 0;
  if (n < 4 || !a.m2 || a.m4 === null) return null;
  return (((n + 1) * (a.m4 / a.m2 ** 2 - 3) + 6) * (n - 1)) / ((n - 2) * (n - 3));
}

const round = (x: number): number => Number(x.toPrecision(12));
