import type { Request, Response } from 'express';
import { applyPatch, fhirpathPatchTypedValue, parseFhirPathPatchParameters, toTypedValue, type Operation } from '@medplum/core';
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { lockCriteria, matchIds } from '../store/conditional.ts';
import type { Writer } from '../store/repository.ts';
import { requestAccess } from './access.ts';
import { writeAcknowledging } from './acknowledgement.ts';
import { type FhirContext, fhirBase, resourceType } from './context.ts';
import { FhirError, badRequest, notFound, preconditionFailed } from './outcome.ts';
import { informational } from './outcome.ts';
import { parseETag, sendWriteResult, versionHeaders } from './respond.ts';
import type { WriteHook, WriteHooks } from './router.ts';

export type PatchBody = { kind: 'json-patch'; operations: Operation[] } | { kind: 'fhirpath'; parameters: Parameters };

/** The patch document: JSON Patch (`application/json-patch+json`) or a FHIRPath Patch `Parameters`. */
export function patchBody(contentType: string | undefined, body: unknown): PatchBody {
  if (contentType?.includes('json-patch+json')) {
    if (!Array.isArray(body)) throw badRequest('A JSON Patch body must be an array of operations');
    return { kind: 'json-patch', operations: body as Operation[] };
  }
  const p = body as Parameters | undefined;
  if (p?.resourceType !== 'Parameters') throw badRequest('PATCH takes application/json-patch+json or a FHIRPath Patch Parameters resource');
  return { kind: 'fhirpath', parameters: p };
}

/** Applies the patch to a copy of the resource; the result is validated by the write that follows. */
export function applyPatchBody(resource: Resource, patch: PatchBody): Resource {
  const copy = structuredClone(resource) as Resource;
  try {
    if (patch.kind === 'json-patch') {
      const errors = applyPatch(copy, patch.operations).filter((e) => e);
      if (errors.length) throw badRequest(`JSON Patch failed: ${errors.map((e) => e?.message).join('; ')}`);
    } else {
      fhirpathPatchTypedValue(toTypedValue(copy), parseFhirPathPatchParameters(patch.parameters));
    }
  } catch (err) {
    if (err instanceof FhirError) throw err;
    throw new FhirError(422, [{ severity: 'error', code: 'processing', diagnostics: `Patch failed: ${(err as Error).message}` }]);
  }
  if (copy.resourceType !== resource.resourceType || copy.id !== resource.id) {
    throw new FhirError(422, [{ severity: 'error', code: 'processing', diagnostics: 'A patch may not change resourceType or id' }]);
  }
  return copy;
}

/** The id of the one resource a conditional PATCH's criteria match. */
export async function singleMatch(w: Writer, type: string, criteria: string, baseUrl: string): Promise<string> {
  const ids = await matchIds(w.sql, type, criteria, baseUrl);
  if (ids.length === 0) throw notFound(`No ${type} matches "${criteria}"`);
  if (ids.length > 1) throw preconditionFailed(`Conditional patch "${criteria}" matches more than one ${type}`);
  return ids[0];
}

/**
 * Patches one resource inside a transaction, for `user` (acknowledgements are recorded for them);
 * with its type's write hook, the hook makes the patched resource what is stored.
 */
export async function patchResource(
  w: Writer, type: string, id: string, patch: PatchBody, ifMatch: string | undefined, user: string | undefined, hooked?: (patched: Resource, previous: Resource) => Promise<Resource>,
) {
  const current = await w.read(type, id, true);
  if (ifMatch !== undefined && current.versionId !== ifMatch) throw preconditionFailed(`If-Match ${ifMatch} does not match the current version of ${type}/${id}`);
  const previous = JSON.parse(current.content as string) as Resource;
  const patched = applyPatchBody(previous, patch);
  return writeAcknowledging(w, previous, hooked ? await hooked(patched, previous) : patched, user);
}

/** The write hook's view of a patch in this transaction, for patchResource. */
export const hookedPatch = (hook: WriteHook | undefined, w: Writer, res: Response) =>
  hook && ((resource: Resource, previous: Resource) => hook({ resource, previous: async () => previous, sql: w.sql, res }));

/** patch: PATCH [base]/[type]/[id], and the conditional PATCH [base]/[type]?criteria. */
export const patch = (ctx: FhirContext, hooks: WriteHooks) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const body = patchBody(req.get('Content-Type'), req.body);
  const ifMatch = parseETag(req.get('If-Match'));
  const { resource, content } = await ctx.repo.transaction(async (w) => {
    let id = req.params.id as string | undefined;
    if (!id) {
      const criteria = new URL(req.originalUrl, 'http://x').search.slice(1);
      await lockCriteria(w.sql, type, criteria);
      id = await singleMatch(w, type, criteria, ctx.baseUrl);
    }
    return patchResource(w, type, id, body, ifMatch, requestAccess(res).user, hookedPatch(hooks.get(type), w, res));
  });
  const meta = resource.meta as { versionId: string; lastUpdated: string };
  versionHeaders(res, meta);
  res.setHeader('Location', `${fhirBase(ctx)}/${type}/${resource.id}/_history/${meta.versionId}`);
  sendWriteResult(req, res, 200, content, informational(`Patched ${type}/${resource.id}`));
};
