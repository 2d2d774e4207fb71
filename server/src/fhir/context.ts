import type { Request } from 'express';
import type { Resource } from '@medplum/fhirtypes';
import { isKnownResourceType } from '../definitions.ts';
import type { Repository } from '../store/repository.ts';
import { badRequest, notFound } from './outcome.ts';

/** What every FHIR interaction handler works with. */
export interface FhirContext {
  repo: Repository;
  /** Public base of the server, e.g. http://localhost:8103; FHIR base is `${baseUrl}/fhir/R4`. */
  baseUrl: string;
}

export const fhirBase = (ctx: FhirContext): string => `${ctx.baseUrl}/fhir/R4`;

export function resourceType(req: Request): string {
  const type = req.params.type as string;
  if (!isKnownResourceType(type)) throw notFound(`Unknown resource type "${type}"`);
  return type;
}

/** The request body as a resource of the expected type. */
export function bodyResource(req: Request, expectedType?: string): Resource {
  const body = req.body as Resource | undefined;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('Request body must be a FHIR resource in JSON');
  if (typeof body.resourceType !== 'string') throw badRequest('Missing resourceType', 'resourceType');
  if (expectedType && body.resourceType !== expectedType) {
    throw badRequest(`resourceType "${body.resourceType}" does not match the URL's "${expectedType}"`, 'resourceType');
  }
  if (!isKnownResourceType(body.resourceType)) throw badRequest(`Unknown resourceType "${body.resourceType}"`, 'resourceType');
  return body;
}

/** Query string as URLSearchParams (repeated keys kept), merged with a form body for POST _search. */
export function searchParams(req: Request): URLSearchParams {
  const url = new URL(req.originalUrl, 'http://x');
  const params = new URLSearchParams(url.search);
  if (req.is('application/x-www-form-urlencoded') && req.body && typeof req.body === 'object') {
    for (const [k, v] of Object.entries(req.body as Record<string, string | string[]>)) {
      for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
    }
  }
  return params;
}
