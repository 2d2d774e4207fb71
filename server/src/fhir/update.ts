import type { Request, Response } from 'express';
import { conditionalUpdate } from '../store/conditional.ts';
import { requestAccess } from './access.ts';
import { updateAcknowledging } from './acknowledgement.ts';
import { bodyResource, type FhirContext, fhirBase, resourceType } from './context.ts';
import { badRequest, informational } from './outcome.ts';
import { parseETag, sendWriteResult, versionHeaders } from './respond.ts';

/**
 * update: PUT [base]/[type]/[id], creating the resource when the id is new (update-as-create);
 * PUT [base]/[type]?criteria is the conditional update.
 */
export const update = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const id = req.params.id as string | undefined;
  const resource = bodyResource(req, type);
  const ifMatch = parseETag(req.get('If-Match'));
  const { user } = requestAccess(res);
  let result;
  if (id) {
    if (resource.id !== id) throw badRequest(`Resource id "${resource.id ?? ''}" does not match the URL's "${id}"`, `${type}.id`);
    result = await ctx.repo.transaction((w) => updateAcknowledging(w, resource, user, { ifMatch }));
  } else {
    const criteria = new URL(req.originalUrl, 'http://x').search.slice(1);
    if (!criteria) throw badRequest('PUT needs an id or search criteria');
    result = await ctx.repo.transaction((w) => conditionalUpdate(w, resource, criteria, user, ifMatch));
  }
  const { resource: stored, content, created } = result;
  const meta = stored.meta as { versionId: string; lastUpdated: string };
  versionHeaders(res, meta);
  res.setHeader('Location', `${fhirBase(ctx)}/${type}/${stored.id}/_history/${meta.versionId}`);
  sendWriteResult(req, res, created ? 201 : 200, content, informational(`${created ? 'Created' : 'Updated'} ${type}/${stored.id}`));
};
