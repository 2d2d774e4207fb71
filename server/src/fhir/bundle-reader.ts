import type { Request } from 'express';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { isKnownResourceType } from '../definitions.ts';
import { JsonSplitter, JsonSyntaxError } from './json-splitter.ts';
import { FhirError, badRequest } from './outcome.ts';
import { FHIR_JSON } from './respond.ts';
import { streamBody } from './request-body.ts';

/** One entry of a batch or transaction, checked and with its url taken apart. */
export interface EntryRequest {
  index: number;
  method: Method;
  type: string;
  id?: string;
  query?: string;
  entry: BundleEntry;
}

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The order a transaction processes its entries in (the spec's: DELETE, POST, PUT/PATCH, GET). */
export const ORDER: Record<Method, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };

export interface BatchBundle {
  type: 'batch' | 'transaction';
  entries: EntryRequest[];
}

/**
 * Reads the Bundle of a batch or transaction as its body streams in. Each entry is parsed and
 * checked as soon as its text is complete, and its text dropped, so that the body is never held
 * twice (as text and as objects) and no step blocks the event loop for long. A bad entry stops the
 * parsing at once (the rest of the body is read off unparsed); nothing runs before the whole
 * Bundle has been read.
 */
export async function readBundle(req: Request, limit: number): Promise<BatchBundle> {
  if (req.is(['application/json', FHIR_JSON]) === false) {
    throw new FhirError(415, [{ severity: 'error', code: 'not-supported', diagnostics: `POST to the base URL takes a Bundle in ${FHIR_JSON}` }]);
  }
  const entries: EntryRequest[] = [];
  const fullUrls = new Map<string, number>();
  const splitter = new JsonSplitter('entry', (value, index) => entries.push(checkEntry(value, index, fullUrls)));
  let bundle: Bundle;
  try {
    await streamBody(req, limit, (text) => splitter.write(text));
    bundle = JSON.parse(splitter.end()) as Bundle;
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw new FhirError(400, [{ severity: 'error', code: 'structure', diagnostics: `Malformed JSON: ${err.message}` }]);
    throw err;
  }
  if (bundle?.resourceType !== 'Bundle') throw badRequest('POST to the base URL takes a Bundle of type batch or transaction', 'resourceType');
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') throw badRequest(`Bundle.type must be batch or transaction, not "${bundle.type}"`, 'Bundle.type');
  // an array was split off into `entries`, leaving an empty one; anything else stayed here
  if (bundle.entry !== undefined && !Array.isArray(bundle.entry)) throw badRequest('Bundle.entry must be an array', 'Bundle.entry');
  return { type: bundle.type, entries };
}

function checkEntry(value: unknown, index: number, fullUrls: Map<string, number>): EntryRequest {
  const at = `Bundle.entry[${index}]`;
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw badRequest(`${at} must be an object`, at);
  const entry = value as BundleEntry;
  const method = entry.request?.method;
  const url = entry.request?.url;
  if (typeof method !== 'string' || !Object.hasOwn(ORDER, method)) throw badRequest(`${at}.request.method must be GET, HEAD, POST, PUT, PATCH or DELETE`, `${at}.request.method`);
  if (typeof url !== 'string' || !url) throw badRequest(`${at}.request.url is required`, `${at}.request.url`);
  if (entry.fullUrl !== undefined) {
    if (typeof entry.fullUrl !== 'string') throw badRequest(`${at}.fullUrl must be a string`, `${at}.fullUrl`);
    const previous = fullUrls.get(entry.fullUrl);
    if (previous !== undefined) throw badRequest(`${at}.fullUrl duplicates Bundle.entry[${previous}].fullUrl`, `${at}.fullUrl`);
    fullUrls.set(entry.fullUrl, index);
  }
  const resource = entry.resource as (Resource & { type?: string }) | undefined;
  if ((method === 'POST' || method === 'PUT') && !resource) throw badRequest(`${at}.resource is required for ${method}`, `${at}.resource`);
  if (resource?.resourceType === 'Bundle' && (resource.type === 'transaction' || resource.type === 'batch')) {
    throw badRequest(`${at} nests a ${resource.type} Bundle, which cannot be processed inside another`, `${at}.resource`);
  }
  const q = url.indexOf('?');
  const [path, query] = q < 0 ? [url, undefined] : [url.slice(0, q), url.slice(q + 1)];
  const [type, id, ...rest] = path.split('/');
  if (!isKnownResourceType(type)) throw badRequest(`${at}.request.url names an unknown resource type "${type}"`, `${at}.request.url`);
  if (resource && method !== 'PATCH' && resource.resourceType !== type) throw badRequest(`${at}.resource is a ${resource.resourceType} but the url names ${type}`, `${at}.resource`);
  if (rest.length > 0 && method !== 'GET' && method !== 'HEAD') throw badRequest(`${at}.request.url "${url}" is not supported for ${method}`, `${at}.request.url`);
  return { index, method: method as Method, type, id: id || undefined, query, entry };
}
