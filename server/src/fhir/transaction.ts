import { setImmediate } from 'node:timers/promises';
import type { Request, Response } from 'express';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { conditionalCreate, conditionalDelete, conditionalUpdate, lockAllCriteria, matchIds } from '../store/conditional.ts';
import { quote } from '../store/columns.ts';
import type { Sql } from '../store/database.ts';
import { newResourceId } from '../store/ids.ts';
import type { WriteResult, Writer } from '../store/repository.ts';
import { executeSearch } from '../store/search/execute.ts';
import { parseSearch } from '../store/search/query.ts';
import { auditEntries } from '../ops/audit.ts';
import { type RequestAccess, requestAccess } from './access.ts';
import { acknowledge, updateAcknowledging } from './acknowledgement.ts';
import { type EntryRequest, ORDER, readBundle } from './bundle-reader.ts';
import { type FhirContext, fhirBase } from './context.ts';
import { FhirError, badRequest, preconditionFailed } from './outcome.ts';
import { type PatchBody, hookedPatch, patchBody, patchResource, singleMatch } from './patch.ts';
import { preferredReturn, sendJson } from './respond.ts';
import type { WriteHooks } from './router.ts';

/**
 * batch and transaction: POST [base] with a Bundle. A transaction is one database transaction,
 * processed in the spec's order (DELETE, POST, PUT/PATCH, GET) after every `urn:uuid:`/`urn:oid:`
 * fullUrl and conditional reference has been resolved; a batch runs each entry on its own.
 */
interface EntryResult {
  status: string;
  location?: string;
  etag?: string;
  lastModified?: string;
  resource?: string;
  /** A written resource: in the answer when the client prefers `return=representation`. */
  written?: string;
  outcome?: OperationOutcome;
}

/** Each entry is checked as the equivalent single request would be, with the caller's access and its type's write hook. */
type EntryContext = FhirContext & { access: RequestAccess; hooks: WriteHooks; res: Response };

export const batchOrTransaction = (ctx: FhirContext, maxBodyBytes: number, hooks: WriteHooks) => async (req: Request, res: Response): Promise<void> => {
  const bundle = await readBundle(req, maxBodyBytes);
  const requests = bundle.entries;
  const ectx: EntryContext = { ...ctx, access: requestAccess(res), hooks, res };
  let results: EntryResult[];
  if (bundle.type === 'transaction') {
    results = await ctx.repo.transaction((w) => runTransaction(w, requests, ectx));
  } else {
    results = [];
    for (const r of requests) {
      try {
        results[r.index] = await ctx.repo.transaction(async (w) => {
          if (r.entry.resource) await resolveReferences(w, r.entry.resource, new Map(), r.index, ectx);
          return runEntry(w, r, ectx);
        });
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
        results[r.index] = { status: String(err.status), outcome: err.outcome };
      }
    }
  }
  auditEntries(res, bundle.type, requests.map((r) => ({ method: r.method, url: r.entry.request?.url ?? '', status: results[r.index].status, location: results[r.index].location })));
  const representation = preferredReturn(req) === 'representation';
  const entries = results.map((r) => `{${r.resource || (representation && r.written) ? `"resource":${r.resource ?? r.written},` : ''}"response":${JSON.stringify({
    status: r.status, location: r.location, etag: r.etag, lastModified: r.lastModified, outcome: r.outcome,
  })}}`);
  sendJson(req, res, 200, `{"resourceType":"Bundle","type":"${bundle.type}-response","entry":[${entries.join(',')}]}`);
};

async function runTransaction(w: Writer, requests: EntryRequest[], ctx: EntryContext): Promise<EntryResult[]> {
  await lockAllCriteria(w.sql, requests.flatMap(conditionalCriteria));
  const results: EntryResult[] = [];
  const ids = new Map<string, string>(); // fullUrl → Type/id
  const existing = new Set<number>(); // conditional creates that matched
  // Identities first, so that every reference can be rewritten before anything is written.
  for (const r of requests) {
    if (r.method === 'POST') {
      r.id = await atEntry(r.index, () => createIdentity(w, r, ctx, existing));
      if (r.entry.fullUrl) ids.set(r.entry.fullUrl, `${r.type}/${r.id}`);
    } else if (r.method === 'PUT' && r.id && r.entry.fullUrl) {
      ids.set(r.entry.fullUrl, `${r.type}/${r.id}`);
    }
  }
  const conditional = new Map<string, string>();
  for (const r of requests) {
    if (r.entry.resource) await resolveReferences(w, r.entry.resource, ids, r.index, ctx, conditional);
  }
  const ordered = [...requests].sort((a, b) => ORDER[a.method] - ORDER[b.method] || a.index - b.index);
  const creates = ordered.filter((r) => r.method === 'POST' && !existing.has(r.index));
  for (const r of ordered.filter((r) => r.method === 'DELETE')) results[r.index] = await atEntry(r.index, () => runEntry(w, r, ctx));
  for (const r of creates) {
    await atEntry(r.index, async () => {
      await authorizeEntry(w, r, ctx);
      await hookEntry(w, r, ctx);
    });
  }
  for (const slice of createSlices(creates)) {
    try {
      const written = await w.createMany(slice.map((r) => ({ resource: acknowledge(undefined, r.entry.resource as Resource, ctx.access.user), id: r.id as string })));
      slice.forEach((r, i) => (results[r.index] = writeResult(written[i], true)));
    } catch (err) {
      if (err instanceof FhirError && err.item !== undefined) tagEntry(err, slice[err.item].index);
      throw err;
    }
    await setImmediate();
  }
  for (const r of ordered) {
    if (results[r.index]) continue;
    if (existing.has(r.index)) {
      const found = await w.read(r.type, r.id as string);
      results[r.index] = { status: '200 OK', location: `${r.type}/${r.id}/_history/${found.versionId}`, etag: `W/"${found.versionId}"`, lastModified: found.lastUpdated };
    } else {
      results[r.index] = await atEntry(r.index, () => runEntry(w, r, ctx));
    }
  }
  return results;
}

/**
 * The creates in slices of one type and at most one multi-row statement: createMany validates
 * and indexes a slice in one go (about 40 ms for 200 resources), and the event loop turns between.
 */
function createSlices(creates: EntryRequest[]): EntryRequest[][] {
  const slices: EntryRequest[][] = [];
  const open = new Map<string, EntryRequest[]>();
  for (const r of creates) {
    let slice = open.get(r.type);
    if (!slice || slice.length === CREATE_SLICE) {
      slice = [];
      slices.push(slice);
      open.set(r.type, slice);
    }
    slice.push(r);
  }
  return slices;
}

const CREATE_SLICE = 200;

/** What a conditional entry's write locks: its ifNoneExist, or the search of a conditional PUT, PATCH or DELETE. */
function conditionalCriteria(r: EntryRequest): { type: string; query: string }[] {
  const ifNoneExist = r.method === 'POST' ? r.entry.request?.ifNoneExist : undefined;
  if (ifNoneExist) return [{ type: r.type, query: ifNoneExist }];
  return r.method !== 'GET' && r.method !== 'HEAD' && r.method !== 'POST' && r.query !== undefined ? [{ type: r.type, query: r.query }] : [];
}

/** The id a POST entry will have: new, or the one resource its ifNoneExist matches. */
async function createIdentity(w: Writer, r: EntryRequest, ctx: EntryContext, existing: Set<number>): Promise<string> {
  const criteria = r.entry.request?.ifNoneExist;
  if (!criteria) return newResourceId();
  // runTransaction locked every entry's criteria up front
  await authorizeEntry(w, r, ctx);
  const found = await matchIds(w.sql, r.type, criteria, ctx.baseUrl);
  if (found.length > 1) throw preconditionFailed(`ifNoneExist "${criteria}" matches more than one ${r.type}`);
  if (found.length === 0) return newResourceId();
  existing.add(r.index);
  return found[0];
}

async function atEntry<T>(index: number, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof FhirError) tagEntry(err, index);
    throw err;
  }
}

/** Names the failing entry in the outcome, so a client can find it in a 10,000-entry Bundle. */
function tagEntry(err: FhirError, index: number): void {
  const at = `Bundle.entry[${index}]`;
  for (const issue of err.outcome.issue ?? []) {
    if (!issue.diagnostics?.startsWith('Bundle.entry[')) issue.diagnostics = `${at}: ${issue.diagnostics ?? ''}`;
    issue.expression = (issue.expression ?? [at]).map((e) => (e.startsWith('Bundle.') ? e : `${at}.resource.${e.replace(/^[A-Z][A-Za-z]+\./, '')}`));
  }
}

/**
 * The access check of the equivalent single request, made where the entry runs, so that it sees
 * the transaction's earlier writes and the entry's resolved references.
 */
async function authorizeEntry(w: Writer, r: EntryRequest, ctx: EntryContext): Promise<void> {
  await ctx.access.check?.(w.sql, {
    method: r.method === 'HEAD' ? 'GET' : r.method,
    path: r.id && r.method !== 'POST' ? [r.type, r.id] : [r.type], // a POST's id is the one assigned to it
    body: r.entry.resource,
    patch: () => entryPatch(r),
    ifNoneExist: Boolean(r.entry.request?.ifNoneExist),
    entry: true,
  });
}

/** A POST or PUT entry's resource as its type's write hook has it stored (the hook throws to refuse it). */
async function hookEntry(w: Writer, r: EntryRequest, ctx: EntryContext): Promise<void> {
  const hook = ctx.hooks.get(r.type);
  if (!hook || !r.entry.resource || (r.method !== 'POST' && r.method !== 'PUT')) return;
  const target = r.method === 'POST' ? undefined : r.query !== undefined ? { query: r.query } : { id: r.id };
  const previous = async () => (target ? replacedVersion(w.sql, r.type, target, ctx.baseUrl) : undefined);
  r.entry.resource = await hook({ resource: r.entry.resource, previous, sql: w.sql, res: ctx.res });
}

/** One entry's interaction within the given transaction. */
async function runEntry(w: Writer, r: EntryRequest, ctx: EntryContext): Promise<EntryResult> {
  await authorizeEntry(w, r, ctx);
  await hookEntry(w, r, ctx);
  const resource = r.entry.resource as Resource | undefined;
  const ifMatch = r.entry.request?.ifMatch?.replace(/^W\//, '').replaceAll('"', '');
  switch (r.method) {
    case 'POST': {
      const created = acknowledge(undefined, resource as Resource, ctx.access.user);
      const criteria = r.entry.request?.ifNoneExist;
      if (criteria) {
        const result = await conditionalCreate(w, created, criteria);
        return writeResult(result);
      }
      return writeResult(await w.create(created));
    }
    case 'PUT': {
      if (r.query !== undefined) return writeResult(await conditionalUpdate(w, resource as Resource, r.query, ctx.access.user, ifMatch));
      if (resource?.id !== r.id) throw badRequest(`Resource id "${resource?.id ?? ''}" does not match the url's "${r.id}"`, `Bundle.entry[${r.index}].resource.id`);
      return writeResult(await updateAcknowledging(w, resource as Resource, ctx.access.user, { ifMatch }));
    }
    case 'PATCH': {
      const id = r.id ?? (await singleMatch(w, r.type, r.query ?? '', ctx.baseUrl));
      return writeResult(await patchResource(w, r.type, id, entryPatch(r), ifMatch, ctx.access.user, hookedPatch(ctx.hooks.get(r.type), w, ctx.res)));
    }
    case 'DELETE':
      if (r.id) {
        const d = await w.delete(r.type, r.id);
        return { status: d ? '204 No Content' : '404 Not Found', etag: d ? `W/"${d.versionId}"` : undefined };
      }
      await conditionalDelete(w, r.type, r.query ?? '', false);
      return { status: '204 No Content' };
    case 'GET':
    case 'HEAD': {
      if (r.id) {
        const v = await w.read(r.type, r.id);
        return { status: '200 OK', resource: r.method === 'GET' ? (v.content as string) : undefined, etag: `W/"${v.versionId}"`, lastModified: v.lastUpdated };
      }
      const query = parseSearch(r.type, new URLSearchParams(r.query ?? ''));
      const found = await executeSearch(w.sql, query, ctx.baseUrl, ctx.access.restriction);
      const base = fhirBase(ctx);
      const entries = found.matches.map((m) => `{"fullUrl":"${base}/${m.resourceType}/${m.id}","resource":${m.content},"search":{"mode":"match"}}`);
      return { status: '200 OK', resource: `{"resourceType":"Bundle","type":"searchset"${found.total !== undefined ? `,"total":${found.total}` : ''},"entry":[${entries.join(',')}]}` };
    }
  }
}

/** A JSON Patch travels in a Binary (base64) per the spec; a FHIRPath Patch as Parameters. */
function entryPatch(r: EntryRequest): PatchBody {
  const resource = r.entry.resource as (Resource & { data?: string }) | undefined;
  if (resource?.resourceType === 'Binary' && resource.data) return patchBody('application/json-patch+json', JSON.parse(Buffer.from(resource.data, 'base64').toString('utf8')));
  if (resource?.resourceType === 'Parameters') return patchBody('application/fhir+json', resource);
  throw badRequest(`Bundle.entry[${r.index}] PATCH needs a Binary JSON Patch or a Parameters FHIRPath Patch`, `Bundle.entry[${r.index}].resource`);
}

/** The current version a PUT replaces (by id, or the one match of its criteria), none when it creates. */
export async function replacedVersion(sql: Sql, type: string, target: { id?: string; query?: string }, baseUrl: string): Promise<Resource | undefined> {
  const ids = target.id !== undefined ? [target.id] : await matchIds(sql, type, target.query ?? '', baseUrl);
  if (ids.length !== 1) return undefined; // several: the write itself answers 412
  const [row] = await sql.query<{ content: string | null }>(`SELECT content FROM ${quote(type)} WHERE id = $1 AND NOT deleted`, [ids[0]]);
  return row?.content ? (JSON.parse(row.content) as Resource) : undefined;
}

function writeResult(result: WriteResult, created = result.created): EntryResult {
  const meta = result.resource.meta as { versionId: string; lastUpdated: string };
  return {
    status: created ? '201 Created' : '200 OK',
    location: `${result.resource.resourceType}/${result.resource.id}/_history/${meta.versionId}`,
    etag: `W/"${meta.versionId}"`,
    lastModified: meta.lastUpdated,
    written: result.content,
  };
}

/**
 * Rewrites every `reference` in the resource (including inside extensions and contained
 * resources): bundle fullUrls to the assigned `Type/id`, and conditional references
 * (`Patient?identifier=…`) to the single resource they match.
 */
async function resolveReferences(w: Writer, resource: Resource, ids: Map<string, string>, index: number, ctx: EntryContext, cache = new Map<string, string>()): Promise<void> {
  for (const holder of referenceHolders(resource)) {
    const ref = holder.reference;
    const mapped = ids.get(ref) ?? cache.get(ref);
    if (mapped) {
      holder.reference = mapped;
    } else if (ref.startsWith('urn:uuid:') || ref.startsWith('urn:oid:')) {
      throw badRequest(`Bundle.entry[${index}] references ${ref}, which no entry's fullUrl defines`, `Bundle.entry[${index}].resource`);
    } else if (CONDITIONAL_REFERENCE.test(ref)) {
      holder.reference = await conditionalTarget(w, ref, index, ctx);
      cache.set(ref, holder.reference);
    }
  }
}

const CONDITIONAL_REFERENCE = /^([A-Z][A-Za-z]+)\?(.+)$/;

/** The one resource a conditional reference (`Patient?identifier=…`) matches, as `Type/id`. */
async function conditionalTarget(w: Writer, ref: string, index: number, ctx: EntryContext): Promise<string> {
  const [, type, criteria] = CONDITIONAL_REFERENCE.exec(ref) as RegExpExecArray;
  // among what the caller may see: a conditional reference is no probe into other compartments
  const found = await matchIds(w.sql, type, criteria, ctx.baseUrl, 2, ctx.access.restriction);
  if (found.length !== 1) {
    throw new FhirError(found.length === 0 ? 400 : 412, [{
      severity: 'error', code: found.length === 0 ? 'not-found' : 'multiple-matches',
      diagnostics: `Bundle.entry[${index}]: conditional reference "${ref}" matches ${found.length === 0 ? 'nothing' : 'more than one resource'}`,
      expression: [`Bundle.entry[${index}].resource`],
    }]);
  }
  return `${type}/${found[0]}`;
}

/** Every object holding a `reference` string, anywhere in the resource: a plain walk, since most references need no lookup. */
function referenceHolders(node: unknown, found: { reference: string }[] = []): { reference: string }[] {
  if (Array.isArray(node)) {
    for (const item of node) referenceHolders(item, found);
  } else if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    if (typeof obj.reference === 'string') found.push(obj as { reference: string });
    for (const value of Object.values(obj)) if (value && typeof value === 'object') referenceHolders(value, found);
  }
  return found;
}
