import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Bundle, BundleEntry, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { isKnownResourceType } from '../definitions.ts';
import { conditionalCreate, conditionalDelete, conditionalUpdate, lockCriteria, matchIds } from '../store/conditional.ts';
import type { WriteResult, Writer } from '../store/repository.ts';
import { executeSearch } from '../store/search/execute.ts';
import { parseSearch } from '../store/search/query.ts';
import { type FhirContext, fhirBase } from './context.ts';
import { FhirError, badRequest, notFound, preconditionFailed } from './outcome.ts';
import { applyPatchBody, patchBody } from './patch.ts';
import { sendJson } from './respond.ts';

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
  outcome?: OperationOutcome;
}

interface Request_ {
  index: number;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  type: string;
  id?: string;
  query?: string;
  entry: BundleEntry;
}

const ORDER = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 } as const;

export const batchOrTransaction = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const bundle = req.body as Bundle | undefined;
  if (bundle?.resourceType !== 'Bundle') throw badRequest('POST to the base URL takes a Bundle of type batch or transaction', 'resourceType');
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') throw badRequest(`Bundle.type must be batch or transaction, not "${bundle.type}"`, 'Bundle.type');
  const requests = parseEntries(bundle.entry ?? []);
  let results: EntryResult[];
  if (bundle.type === 'transaction') {
    results = await ctx.repo.transaction((w) => runTransaction(w, requests, ctx));
  } else {
    results = [];
    for (const r of requests) {
      try {
        results[r.index] = await ctx.repo.transaction(async (w) => {
          if (r.entry.resource) await resolveReferences(w, r.entry.resource, new Map(), r.index, ctx);
          return runEntry(w, r, ctx);
        });
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
        results[r.index] = { status: String(err.status), outcome: err.outcome };
      }
    }
  }
  const entries = results.map((r) => `{${r.resource ? `"resource":${r.resource},` : ''}"response":${JSON.stringify({
    status: r.status, location: r.location, etag: r.etag, lastModified: r.lastModified, outcome: r.outcome,
  })}}`);
  sendJson(req, res, 200, `{"resourceType":"Bundle","type":"${bundle.type}-response","entry":[${entries.join(',')}]}`);
};

function parseEntries(entries: BundleEntry[]): Request_[] {
  const fullUrls = new Map<string, number>();
  return entries.map((entry, index) => {
    const at = `Bundle.entry[${index}]`;
    const method = entry.request?.method;
    const url = entry.request?.url;
    if (!method || !(method in ORDER)) throw badRequest(`${at}.request.method must be GET, HEAD, POST, PUT, PATCH or DELETE`, `${at}.request.method`);
    if (!url) throw badRequest(`${at}.request.url is required`, `${at}.request.url`);
    if (entry.fullUrl) {
      const previous = fullUrls.get(entry.fullUrl);
      if (previous !== undefined) throw badRequest(`${at}.fullUrl duplicates Bundle.entry[${previous}].fullUrl`, `${at}.fullUrl`);
      fullUrls.set(entry.fullUrl, index);
    }
    const resource = entry.resource as (Resource & { type?: string }) | undefined;
    if ((method === 'POST' || method === 'PUT') && !resource) throw badRequest(`${at}.resource is required for ${method}`, `${at}.resource`);
    if (resource?.resourceType === 'Bundle' && (resource.type === 'transaction' || resource.type === 'batch')) {
      throw badRequest(`${at} nests a ${resource.type} Bundle, which cannot be processed inside another`, `${at}.resource`);
    }
    const [path, query] = splitUrl(url);
    const [type, id, ...rest] = path.split('/');
    if (!isKnownResourceType(type)) throw badRequest(`${at}.request.url names an unknown resource type "${type}"`, `${at}.request.url`);
    if (resource && method !== 'PATCH' && resource.resourceType !== type) throw badRequest(`${at}.resource is a ${resource.resourceType} but the url names ${type}`, `${at}.resource`);
    if (rest.length > 0 && method !== 'GET' && method !== 'HEAD') throw badRequest(`${at}.request.url "${url}" is not supported for ${method}`, `${at}.request.url`);
    return { index, method, type, id: id || undefined, query, entry } as Request_;
  });
}

function splitUrl(url: string): [string, string | undefined] {
  const q = url.indexOf('?');
  return q < 0 ? [url, undefined] : [url.slice(0, q), url.slice(q + 1)];
}

async function runTransaction(w: Writer, requests: Request_[], ctx: FhirContext): Promise<EntryResult[]> {
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
  try {
    const written = await w.createMany(creates.map((r) => ({ resource: r.entry.resource as Resource, id: r.id as string })));
    creates.forEach((r, i) => (results[r.index] = writeResult(written[i], true)));
  } catch (err) {
    if (err instanceof FhirError && err.item !== undefined) tagEntry(err, creates[err.item].index);
    throw err;
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

/** The id a POST entry will have: new, or the one resource its ifNoneExist matches. */
async function createIdentity(w: Writer, r: Request_, ctx: FhirContext, existing: Set<number>): Promise<string> {
  const criteria = r.entry.request?.ifNoneExist;
  if (!criteria) return randomUUID();
  await lockCriteria(w.sql, r.type, criteria);
  const found = await matchIds(w.sql, r.type, criteria, ctx.baseUrl);
  if (found.length > 1) throw preconditionFailed(`ifNoneExist "${criteria}" matches more than one ${r.type}`);
  if (found.length === 0) return randomUUID();
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

/** One entry's interaction within the given transaction. */
async function runEntry(w: Writer, r: Request_, ctx: FhirContext): Promise<EntryResult> {
  const resource = r.entry.resource as Resource | undefined;
  const ifMatch = r.entry.request?.ifMatch?.replace(/^W\//, '').replaceAll('"', '');
  switch (r.method) {
    case 'POST': {
      const criteria = r.entry.request?.ifNoneExist;
      if (criteria) {
        const result = await conditionalCreate(w, resource as Resource, criteria);
        return writeResult(result);
      }
      return writeResult(await w.create(resource as Resource));
    }
    case 'PUT': {
      if (r.query !== undefined) return writeResult(await conditionalUpdate(w, resource as Resource, r.query, ifMatch));
      if (resource?.id !== r.id) throw badRequest(`Resource id "${resource?.id ?? ''}" does not match the url's "${r.id}"`, `Bundle.entry[${r.index}].resource.id`);
      return writeResult(await w.update(resource as Resource, { ifMatch }));
    }
    case 'PATCH': {
      const id = r.id ?? (await singleMatch(w, r, ctx));
      const patch = patchBody(resource?.resourceType === 'Parameters' ? 'application/fhir+json' : 'application/json-patch+json', patchDocument(r));
      const current = await w.read(r.type, id, true);
      if (ifMatch !== undefined && current.versionId !== ifMatch) throw preconditionFailed(`ifMatch ${ifMatch} does not match ${r.type}/${id}`);
      return writeResult(await w.update(applyPatchBody(JSON.parse(current.content as string) as Resource, patch)));
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
      const found = await executeSearch(w.sql, query, ctx.baseUrl);
      const base = fhirBase(ctx);
      const entries = found.matches.map((m) => `{"fullUrl":"${base}/${m.resourceType}/${m.id}","resource":${m.content},"search":{"mode":"match"}}`);
      return { status: '200 OK', resource: `{"resourceType":"Bundle","type":"searchset"${found.total !== undefined ? `,"total":${found.total}` : ''},"entry":[${entries.join(',')}]}` };
    }
  }
}

/** A JSON Patch travels in a Binary (base64) per the spec; a FHIRPath Patch as Parameters. */
function patchDocument(r: Request_): unknown {
  const resource = r.entry.resource as (Resource & { data?: string }) | undefined;
  if (resource?.resourceType === 'Binary' && resource.data) return JSON.parse(Buffer.from(resource.data, 'base64').toString('utf8'));
  if (resource?.resourceType === 'Parameters') return resource;
  throw badRequest(`Bundle.entry[${r.index}] PATCH needs a Binary JSON Patch or a Parameters FHIRPath Patch`, `Bundle.entry[${r.index}].resource`);
}

async function singleMatch(w: Writer, r: Request_, ctx: FhirContext): Promise<string> {
  const ids = await matchIds(w.sql, r.type, r.query ?? '', ctx.baseUrl);
  if (ids.length === 0) throw notFound(`No ${r.type} matches "${r.query}"`);
  if (ids.length > 1) throw preconditionFailed(`"${r.query}" matches more than one ${r.type}`);
  return ids[0];
}

function writeResult(result: WriteResult, created = result.created): EntryResult {
  const meta = result.resource.meta as { versionId: string; lastUpdated: string };
  return {
    status: created ? '201 Created' : '200 OK',
    location: `${result.resource.resourceType}/${result.resource.id}/_history/${meta.versionId}`,
    etag: `W/"${meta.versionId}"`,
    lastModified: meta.lastUpdated,
  };
}

/**
 * Rewrites every `reference` in the resource (including inside extensions and contained
 * resources): bundle fullUrls to the assigned `Type/id`, and conditional references
 * (`Patient?identifier=…`) to the single resource they match.
 */
async function resolveReferences(w: Writer, resource: Resource, ids: Map<string, string>, index: number, ctx: FhirContext, cache = new Map<string, string>()): Promise<void> {
  const visit = async (node: unknown): Promise<void> => {
    if (Array.isArray(node)) {
      for (const item of node) await visit(item);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const obj = node as Record<string, unknown>;
    const ref = obj.reference;
    if (typeof ref === 'string') obj.reference = await resolve(ref);
    for (const [key, value] of Object.entries(obj)) {
      if (key !== 'reference' && value && typeof value === 'object') await visit(value);
    }
  };
  const resolve = async (ref: string): Promise<string> => {
    const mapped = ids.get(ref);
    if (mapped) return mapped;
    if (ref.startsWith('urn:uuid:') || ref.startsWith('urn:oid:')) {
      throw badRequest(`Bundle.entry[${index}] references ${ref}, which no entry's fullUrl defines`, `Bundle.entry[${index}].resource`);
    }
    const m = /^([A-Z][A-Za-z]+)\?(.+)$/.exec(ref);
    if (!m) return ref;
    const cached = cache.get(ref);
    if (cached) return cached;
    const found = await matchIds(w.sql, m[1], m[2], ctx.baseUrl);
    if (found.length !== 1) {
      throw new FhirError(found.length === 0 ? 400 : 412, [{
        severity: 'error', code: found.length === 0 ? 'not-found' : 'multiple-matches',
        diagnostics: `Bundle.entry[${index}]: conditional reference "${ref}" matches ${found.length === 0 ? 'nothing' : 'more than one resource'}`,
        expression: [`Bundle.entry[${index}].resource`],
      }]);
    }
    const target = `${m[1]}/${found[0]}`;
    cache.set(ref, target);
    return target;
  };
  await visit(resource);
}
