import type { Request, Response } from 'express';
import { getPatientCompartmentParams, getResourceTypeList, getSearchParams, isKnownResourceType } from '../../definitions.ts';
import { quote } from '../../store/columns.ts';
import { Params, col } from '../../store/search/conditions.ts';
import type { Restriction } from '../../store/search/execute.ts';
import { MAX_COUNT, splitValues } from '../../store/search/query.ts';
import { parseDate } from '../../store/search/values.ts';
import { bundleText, type BundleEntryText } from '../bundle.ts';
import { type FhirContext, fhirBase } from '../context.ts';
import { badRequest, notFound } from '../outcome.ts';
import { sendJson } from '../respond.ts';
import { checkKnown, operationParams, positiveInt, single } from './parameters.ts';

/**
 * Patient/$everything (R4), instance and type level: the Patient, then every resource in its
 * compartment (the `compartments` column, GIN-indexed), type by type in id order, paged by a keyset
 * cursor. Resources those reference that belong to no patient's compartment (Practitioner,
 * Organization, Location, Medication…) come along as `include` entries of the page that references
 * them. The type level is every Patient and every resource in some patient's compartment.
 *
 * `start`/`end` are care dates: they filter the resource types that have one (the `date` search
 * parameter, or the type's own in CARE_DATES) by overlap; resources without a care date are kept.
 */
const KNOWN = new Set(['start', 'end', '_since', '_type', '_count', '_cursor']);
const CARE_DATES: Record<string, string> = {
  Condition: 'onset-date',
  MedicationAdministration: 'effective-time',
  MedicationDispense: 'whenhandedover',
  MedicationRequest: 'authoredon',
  MedicationStatement: 'effective',
  Communication: 'sent',
  ServiceRequest: 'authored',
  Specimen: 'collected',
  ImagingStudy: 'started',
  Media: 'created',
  QuestionnaireResponse: 'authored',
  Task: 'authored-on',
};

interface Branch { type: string; self?: boolean }

let branchList: Branch[] | undefined;
/**
 * Self first, other Patients (linked ones), then the compartment's types: a branch's key is its
 * index. AuditEvents are left out: they record who reached the record, and are not part of it.
 */
function branches(): Branch[] {
  branchList ??= [
    { type: 'Patient', self: true },
    { type: 'Patient' },
    ...getResourceTypeList().filter((t) => t !== 'Patient' && t !== 'AuditEvent' && getPatientCompartmentParams(t).length > 0).sort().map((type) => ({ type })),
  ];
  return branchList;
}

interface Options {
  patient?: string;
  types?: ReadonlySet<string>;
  since?: string;
  start?: string;
  end?: string;
  count: number;
  cursor?: [number, string];
  /** The access policy's limit on what the token may read. */
  restrict?: Restriction;
}

interface PageRow { k: number; id: string; content: string; refs: (string | null)[] }

export const everything = (ctx: FhirContext, level: 'instance' | 'type') => async (req: Request, res: Response): Promise<void> => {
  const params = operationParams(req);
  const id = level === 'instance' ? (req.params.id as string) : undefined;
  const options = { ...parseOptions(params, id), restrict: res.locals.restriction as Restriction | undefined };
  if (id) await checkPatient(ctx, id, options.restrict);
  const query = pageSql(options);
  const rows = query ? await ctx.repo.db.query<PageRow>(query.sql, query.params) : [];
  const page = rows.slice(0, options.count);
  const included = await referenced(ctx, page, options);
  const base = fhirBase(ctx);
  const entry = (type: string, r: { id: string; content: string }, mode: 'match' | 'include'): BundleEntryText => ({
    fullUrl: `${base}/${type}/${r.id}`,
    resource: r.content,
    search: { mode },
  });
  const path = `${base}/Patient/${id ? `${id}/` : ''}$everything`;
  const link = (cursor?: string): string => {
    const p = new URLSearchParams(params);
    p.delete('_cursor');
    if (cursor) p.set('_cursor', cursor);
    return `${path}${p.size ? `?${p}` : ''}`;
  };
  const links = [{ relation: 'self', url: link(single(params, '_cursor')) }];
  const last = page[page.length - 1];
  if (rows.length > options.count && last) links.push({ relation: 'next', url: link(encodeCursor([last.k, last.id])) });
  const entries = [
    ...page.map((r) => entry(branches()[r.k].type, r, 'match')),
    ...included.map((r) => entry(r.type, r, 'include')),
  ];
  sendJson(req, res, 200, bundleText('searchset', links, entries));
};

/** 404 (or 410) unless the Patient exists and the token may read it. */
async function checkPatient(ctx: FhirContext, id: string, restrict: Restriction | undefined): Promise<void> {
  await ctx.repo.readVersion('Patient', id);
  const params = new Params();
  const access = restrict?.('t', 'Patient', params);
  if (!access) return;
  const rows = await ctx.repo.db.query(`SELECT 1 FROM "Patient" t WHERE t.id = ${params.add(id)} AND ${access}`, params.values);
  if (rows.length === 0) throw notFound(`Patient/${id} not found`);
}

function parseOptions(params: URLSearchParams, patient: string | undefined): Options {
  checkKnown(params, KNOWN);
  const typeValues = params.getAll('_type').flatMap(splitValues).map((t) => t.trim());
  for (const t of typeValues) if (!isKnownResourceType(t)) throw badRequest(`Unknown resource type "${t}" in _type`, '_type');
  const date = (name: string, side: 's' | 'e'): string | undefined => {
    const v = single(params, name);
    return v === undefined ? undefined : parseDate(v, name)[side];
  };
  const countText = single(params, '_count');
  const cursorText = single(params, '_cursor');
  return {
    patient,
    types: typeValues.length ? new Set(typeValues) : undefined,
    since: date('_since', 's'),
    start: date('start', 's'),
    end: date('end', 'e'),
    count: countText === undefined ? MAX_COUNT : Math.min(positiveInt(countText, '_count'), MAX_COUNT),
    cursor: cursorText === undefined ? undefined : decodeCursor(cursorText),
  };
}

/** One UNION ALL branch per type still to page through, each already in id order and limited. */
function pageSql(o: Options): { sql: string; params: unknown[] } | undefined {
  const params = new Params();
  const limit = `${params.add(o.count + 1)}::int`;
  // bound on first use: a parameter no branch uses would have no type
  const bind = (value: unknown): (() => string) => {
    let placeholder: string | undefined;
    return () => (placeholder ??= params.add(value));
  };
  const ref = bind([`Patient/${o.patient}`]);
  const self = bind(o.patient);
  const parts: string[] = [];
  branches().forEach((b, k) => {
    if (o.types && !o.types.has(b.type)) return;
    if ((b.self && !o.patient) || (o.cursor && k < o.cursor[0])) return;
    const where = ['NOT t.deleted'];
    if (b.self) where.push(`t.id = ${self()}`);
    else if (b.type === 'Patient') where.push(o.patient ? `t.compartments @> ${ref()}::text[] AND t.id <> ${self()}` : 'true');
    else where.push(o.patient ? `t.compartments @> ${ref()}::text[]` : 't.compartments IS NOT NULL');
    if (o.cursor && k === o.cursor[0]) where.push(`t.id > ${params.add(o.cursor[1])}`);
    if (o.since) where.push(`t.last_updated >= ${params.add(o.since)}::timestamptz`);
    const access = o.restrict?.('t', b.type, params);
    if (access) where.push(access);
    const care = b.type === 'Patient' ? undefined : careDate(b.type);
    if (care && (o.start || o.end)) {
      const [s, e] = [col('t', `${care}_start`), col('t', `${care}_end`)];
      const overlap = [o.end ? `${s} < ${params.add(o.end)}::timestamptz` : '', o.start ? `${e} > ${params.add(o.start)}::timestamptz` : ''].filter(Boolean);
      where.push(`(${s} IS NULL OR (${overlap.join(' AND ')}))`);
    }
    parts.push(`(SELECT ${k} AS k, t.id, t.content, ${referencesSql(b.type)} AS refs FROM ${quote(b.type)} t WHERE ${where.join(' AND ')} ORDER BY t.id LIMIT ${limit})`);
  });
  if (parts.length === 0) return undefined;
  return { sql: `SELECT * FROM (${parts.join(' UNION ALL ')}) u ORDER BY k, id LIMIT ${limit}`, params: params.values };
}

function careDate(type: string): string | undefined {
  const code = CARE_DATES[type] ?? 'date';
  return getSearchParams(type).get(code)?.type === 'date' ? code : undefined;
}

/** Every reference search column of the type, as one text[] (NULL elements for empty single ones). */
function referencesSql(type: string): string {
  const refs = [...getSearchParams(type).values()].filter((p) => p.type === 'reference');
  const singles = refs.filter((p) => !p.array).map((p) => col('t', p.code));
  const arrays = refs.filter((p) => p.array).map((p) => `coalesce(${col('t', p.code)}, '{}'::text[])`);
  return [`ARRAY[${singles.join(', ')}]::text[]`, ...arrays].join(' || ');
}

/** The resources the page references that are in no patient's compartment. */
async function referenced(ctx: FhirContext, page: PageRow[], { types, restrict }: Options): Promise<{ type: string; id: string; content: string }[]> {
  const onPage = new Set(page.map((r) => `${branches()[r.k].type}/${r.id}`));
  const wanted = new Map<string, Set<string>>();
  for (const ref of page.flatMap((r) => r.refs)) {
    const m = ref ? /^([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
    if (!m || onPage.has(ref as string) || !isKnownResourceType(m[1]) || (types && !types.has(m[1]))) continue;
    wanted.set(m[1], (wanted.get(m[1]) ?? new Set()).add(m[2]));
  }
  if (wanted.size === 0) return [];
  const params = new Params();
  const list = [...wanted.keys()].sort();
  const parts = list.map((type, k) => {
    const where = [`t.id = ANY(${params.add([...(wanted.get(type) as Set<string>)])}::text[])`, 'NOT t.deleted', 't.compartments IS NULL'];
    const access = restrict?.('t', type, params);
    if (access) where.push(access);
    return `(SELECT ${k} AS k, t.id, t.content FROM ${quote(type)} t WHERE ${where.join(' AND ')})`;
  });
  const rows = await ctx.repo.db.query<{ k: number; id: string; content: string }>(`SELECT * FROM (${parts.join(' UNION ALL ')}) u ORDER BY k, id`, params.values);
  return rows.map((r) => ({ type: list[r.k], id: r.id, content: r.content }));
}

const encodeCursor = (c: [number, string]): string => Buffer.from(JSON.stringify(c)).toString('base64url');

function decodeCursor(text: string): [number, string] {
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString()) as unknown;
    if (Array.isArray(c) && c.length === 2 && Number.isInteger(c[0]) && c[0] >= 0 && c[0] < branches().length && typeof c[1] === 'string') return [c[0], c[1]];
  } catch {
    // fall through
  }
  throw badRequest('Invalid _cursor', '_cursor');
}
