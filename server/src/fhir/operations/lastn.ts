import type { Request, Response } from 'express';
import { normalizeReference } from '../../store/extract.ts';
import { Params, filterSql, startBounds, type SearchContext } from '../../store/search/conditions.ts';
import type { Restriction } from '../../store/search/execute.ts';
import { parseFilter, splitValues, type Filter } from '../../store/search/query.ts';
import { bundleText } from '../bundle.ts';
import { type FhirContext, fhirBase } from '../context.ts';
import { subset } from '../elements.ts';
import { badRequest, notSupported } from '../outcome.ts';
import { sendJson } from '../respond.ts';
import { operationParams, positiveInt, single } from './parameters.ts';

/**
 * Observation/$lastn (R4): the newest `max` Observations per code for each subject, filtered by any
 * Observation search parameter. Several subjects (`patient=a,b,c`, as a ward overview asks) are
 * each answered by the single-subject index path, in one statement, results grouped by subject.
 * Observations without an effective time have no place in a recency order and are left out.
 */
const TYPE = 'Observation';
const MAX_PER_GROUP = 1000;
const MAX_SUBJECTS = 500;
/** Result parameters that make no sense for grouped results. */
const UNSUPPORTED = new Set(['_sort', '_count', '_cursor', '_total', '_include', '_revinclude']);

export interface LastnRow { id: string; version: string; content: string; code: string[] | null; text: string | null; ms: number }

export const lastn = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const params = operationParams(req);
  const summary = single(params, '_summary');
  const elements = single(params, '_elements')?.split(',').map((e) => e.trim()).filter(Boolean);
  const rows = await lastnRows(ctx, params, res.locals.restriction as Restriction | undefined);
  const base = fhirBase(ctx);
  const entries = rows.map((r) => ({
    fullUrl: `${base}/${TYPE}/${r.id}`,
    resource: subset(r.content, summary, elements),
    search: { mode: 'match' as const },
  }));
  const self = `${base}/${TYPE}/$lastn${params.size ? `?${params}` : ''}`;
  sendJson(req, res, 200, bundleText('searchset', [{ relation: 'self', url: self }], entries, entries.length));
};

/** The Observations `$lastn` answers with for these parameters, grouped by subject, then code. */
export async function lastnRows(ctx: FhirContext, params: URLSearchParams, restriction?: Restriction): Promise<LastnRow[]> {
  return (await lastnRowsMany(ctx, [params], restriction))[0];
}

/**
 * `lastnRows` for several requests at once. Statements of the same shape (a ward's subjects; the
 * bots' window reads: the same codes and filters, another patient and time) run as one: each one's
 * varying values become a row of an `unnest`, and the statement runs once per row as a lateral
 * subquery. One round trip instead of one per subject, each answered as on its own.
 */
export async function lastnRowsMany(ctx: FhirContext, requests: URLSearchParams[], restriction?: Restriction): Promise<LastnRow[][]> {
  const built = requests.map((params) => lastnStatements(ctx, params, restriction));
  const byShape = new Map<string, { request: number; subject: number; statement: Statement }[]>();
  built.forEach((b, request) => b.statements.forEach((statement, subject) => {
    // the same text with the same values but for strings (a patient, a time): those travel as text
    const shape = `${statement.text}\u0000${JSON.stringify(statement.values.map((v) => (typeof v === 'string' ? 0 : v)))}`;
    const group = byShape.get(shape);
    if (group) group.push({ request, subject, statement });
    else byShape.set(shape, [{ request, subject, statement }]);
  }));
  const answers = built.map((b) => b.statements.map((): LastnRow[] => []));
  await Promise.all([...byShape.values()].map(async (group) => {
    const results = await queryMany(ctx, group.map((g) => g.statement));
    group.forEach((g, i) => (answers[g.request][g.subject] = answer(results[i], built[g.request].max)));
  }));
  return answers.map((perSubject) => perSubject.flat());
}

interface Statement { text: string; values: unknown[] }

/** Runs statements of one shape as one: the strings that differ between them come from an `unnest`, one row per statement. */
async function queryMany(ctx: FhirContext, statements: Statement[]): Promise<LastnRow[][]> {
  if (statements.length === 1) return [await ctx.repo.db.query<LastnRow>(statements[0].text, statements[0].values)];
  const [first] = statements;
  const varying = first.values.map((v, i) => typeof v === 'string' && statements.some((s) => s.values[i] !== v));
  const params = new Params();
  const renumbered = first.values.map((v, i) => (varying[i] ? `q.v${i + 1}` : params.add(v)));
  const columns = varying.flatMap((vary, i) => (vary ? [i] : []));
  const arrays = columns.map((i) => `${params.add(statements.map((s) => s.values[i]))}::text[]`);
  const body = first.text.replace(/\$(\d+)/g, (_, n: string) => renumbered[Number(n) - 1]);
  const found = await ctx.repo.db.query<LastnRow & { n: string }>(
    `SELECT q.n, x.* FROM unnest(${arrays.join(', ')}) WITH ORDINALITY AS q(${[...columns.map((i) => `v${i + 1}`), 'n'].join(', ')}) CROSS JOIN LATERAL (${body}) x`,
    params.values,
  );
  const results: LastnRow[][] = statements.map(() => []);
  for (const { n, ...row } of found) results[Number(n) - 1].push(row);
  return results;
}

/** The statements `$lastn` runs for these parameters, one per subject, with the `max` their answers are cut to. */
function lastnStatements(ctx: FhirContext, params: URLSearchParams, restriction?: Restriction): { max: number; statements: Statement[] } {
  const maxText = single(params, 'max');
  const max = maxText === undefined ? 1 : Math.min(positiveInt(maxText, 'max'), MAX_PER_GROUP);
  const subjectKey = [...params.keys()].find((k) => /^(patient|subject)(:Patient)?$/.test(k));
  const subjects = subjectKey && params.getAll(subjectKey).length === 1 ? splitValues(params.get(subjectKey) as string) : [undefined];
  if (subjects.length > MAX_SUBJECTS) throw badRequest(`$lastn takes at most ${MAX_SUBJECTS} subjects at once`, subjectKey);
  const statements = subjects.map((subject) => {
    const filters: Filter[] = [];
    for (const [key, value] of params) {
      if (['max', '_summary', '_elements', '_format', '_pretty'].includes(key)) continue;
      if (UNSUPPORTED.has(key.split(':')[0])) throw notSupported(`${key} is not supported by $lastn`, key);
      filters.push(parseFilter(TYPE, key, key === subjectKey && subject !== undefined ? subject : value, 0));
    }
    if (!filters.some((f) => (f.kind === 'param' || f.kind === 'chain') && (f.param.code === 'patient' || f.param.code === 'subject'))) {
      throw badRequest('$lastn needs a patient or subject parameter', 'patient');
    }
    return newestPerCode(ctx, filters, max, restriction);
  });
  return { max, statements };
}

/** A subject's answer: its rows grouped by code, each group cut to the newest `max`. */
const answer = (rows: LastnRow[], max: number): LastnRow[] => groupByCode(rows).flatMap((group) => newest(group, max));

/**
 * The newest `max` rows (with ties) for each distinct `code` token array, plus for each text-only
 * code. With one Patient, distinct arrays come from a loose index scan of (patient, code, date_start)
 * and each array's newest rows from a backward scan of the same index: a handful of index probes per
 * code, however many Observations the patient has. Filters other than `code` are checked on each
 * code's rows from the newest down, so a code whose rows rarely match is read further.
 */
function newestPerCode(ctx: FhirContext, filters: Filter[], max: number, restrict?: Restriction): Statement {
  const params = new Params();
  const search: SearchContext = { params, baseUrl: ctx.baseUrl };
  const conditions = ['NOT t.deleted', 't.date_start IS NOT NULL', ...filters.map((f) => filterSql(f, 't', TYPE, search))];
  const access = restrict?.('t', TYPE, params);
  if (access) conditions.push(access);
  const patient = patientOf(filters, ctx.baseUrl);
  let codes: string;
  // a code's rows, newest first
  let rowsOfCode = `"Observation" t`;
  if (patient) {
    const p = params.add(patient);
    conditions.push(`t.patient = ${p}`);
    // Read from the (patient, code, date_start) index backwards, fenced from the filters: offered
    // them, the planner reads and sorts a code's whole history to find its newest rows. The fence is
    // a LIMIT it cannot read (NULL: none), so it plans for a tenth of the code's rows; an OFFSET 0
    // fence plans for all of them, and for 20,000 a bitmap scan and sort could win (140 ms against
    // 0.04). Inside go only the date window's bounds on date_start, where the scan stops.
    const window = filters.flatMap((f) =>
      f.kind === 'param' && f.param.code === 'date' && !f.modifier && f.values.length === 1 ? startBounds(f.values[0], 'o.date_start', TYPE, 'date', search) : []);
    rowsOfCode = `(SELECT * FROM "Observation" o WHERE ${[`o.patient = ${p}`, 'o.code = c.code', ...window].join(' AND ')} ORDER BY o.date_start DESC LIMIT (SELECT NULL::bigint)) t`;
    codes = `WITH RECURSIVE codes(code) AS (
      (SELECT o.code FROM "Observation" o WHERE o.patient = ${p} AND o.code IS NOT NULL ORDER BY o.code LIMIT 1)
      UNION ALL
      SELECT (SELECT o.code FROM "Observation" o WHERE o.patient = ${p} AND o.code > c.code ORDER BY o.code LIMIT 1)
      FROM codes c WHERE c.code IS NOT NULL)`;
  } else {
    codes = `WITH codes(code) AS (SELECT DISTINCT t.code FROM "Observation" t WHERE ${conditions.join(' AND ')})`;
  }
  // `code` filters hold for a whole array or for none of its rows: applied once per array, they
  // spare scanning the rows of codes that were not asked for.
  const arrayFilters = filters.filter((f) => f.kind === 'param' && f.param.code === 'code' && f.modifier !== 'text').map((f) => filterSql(f, 'c', TYPE, search));
  const where = conditions.join(' AND ');
  const n = `(${params.add(max)}::int)`;
  const ms = 'extract(epoch FROM t.date_start)::float8';
  const text = `(t.content::jsonb)->'code'->>'text'`;
  const coded = `${codes}
    SELECT x.id, x.version, x.content, x.code, NULL AS text, x.ms FROM codes c CROSS JOIN LATERAL (
      SELECT t.id, t.version_id::text AS version, t.content, t.code, ${ms} AS ms FROM ${rowsOfCode}
      WHERE t.code = c.code AND ${where} ORDER BY t.date_start DESC FETCH FIRST ${n} ROWS WITH TIES) x
    WHERE ${['c.code IS NOT NULL', ...arrayFilters].join(' AND ')}`;
  // A code asked for by token rules out text-only codes. PostgreSQL cannot tell that `code IS NULL`
  // and a token match exclude each other, and would read the subject's whole window to find none.
  if (filters.some(namesCodes)) return { text: coded, values: params.values };
  return {
    text: `${coded}
    UNION ALL
    SELECT id, version, content, NULL, text, ms FROM (
      SELECT t.id, t.version_id::text AS version, t.content, ${text} AS text, ${ms} AS ms, rank() OVER (PARTITION BY ${text} ORDER BY t.date_start DESC) AS r
      FROM "Observation" t WHERE t.code IS NULL AND ${where}) u WHERE r <= ${n}`,
    values: params.values,
  };
}

/** A `code` filter that only a coded Observation can match: tokens without a modifier (`:not`, `:missing`, `:text` can match text-only ones). */
const namesCodes = (f: Filter): boolean => f.kind === 'param' && f.param.code === 'code' && !f.modifier;

/** The one Patient the request names, if it names exactly one; otherwise the codes are found by a scan. */
function patientOf(filters: Filter[], baseUrl: string): string | undefined {
  for (const f of filters) {
    if (f.kind !== 'param' || f.values.length !== 1 || (f.modifier && f.modifier !== 'Patient')) continue;
    if (f.param.code !== 'patient' && f.param.code !== 'subject') continue;
    const ref = normalizeReference(f.values[0], baseUrl);
    if (/^Patient\/[^/]+$/.test(ref)) return ref;
    // a bare subject id may name a Group or Device as well
    if (!ref.includes('/') && (f.param.code === 'patient' || f.modifier === 'Patient')) return `Patient/${ref}`;
  }
  return undefined;
}

/**
 * The spec's grouping: codes are equal when system and code are; an Observation with several codings
 * joins their groups (transitively); text-only codes group by their exact text. Groups come in code
 * order, text-only ones last.
 */
function groupByCode(rows: LastnRow[]): LastnRow[][] {
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    while (parent.get(root) !== root) root = parent.get(root) as string;
    parent.set(k, root);
    return root;
  };
  const identities = (r: LastnRow): string[] => {
    // `system|code` and `|code` identify a coding; bare `code` and `system|` tokens would join systems
    const codings = (r.code ?? []).filter((t) => t.includes('|') && !t.endsWith('|'));
    return codings.length ? codings : [`\u0000${r.code ? r.code.join(',') : `text:${r.text ?? ''}`}`];
  };
  for (const r of rows) {
    const ids = identities(r);
    for (const id of ids) if (!parent.has(id)) parent.set(id, id);
    for (const id of ids.slice(1)) {
      const [a, b] = [find(ids[0]), find(id)];
      parent.set(a < b ? b : a, a < b ? a : b);
    }
  }
  const groups = new Map<string, LastnRow[]>();
  for (const r of rows) {
    const root = find(identities(r)[0]);
    groups.set(root, [...(groups.get(root) ?? []), r]);
  }
  // each group's root is its smallest identity; arrays without codings and text-only codes go last
  const last = (k: string): number => (k.startsWith('\u0000') ? 1 : 0);
  return [...groups.entries()].sort(([a], [b]) => last(a) - last(b) || (a < b ? -1 : 1)).map(([, g]) => g);
}

/** Newest first; ties at the cut-off are all kept, as the spec asks. */
function newest(group: LastnRow[], max: number): LastnRow[] {
  const sorted = [...group].sort((a, b) => b.ms - a.ms || (a.id < b.id ? -1 : 1));
  const cutoff = sorted[Math.min(max, sorted.length) - 1].ms;
  return sorted.filter((r) => r.ms >= cutoff);
}
