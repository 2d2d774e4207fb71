import type { Request, Response } from 'express';
import { bodyResource, type FhirContext, fhirBase, resourceType } from './context.ts';
import { badRequest, informational } from './outcome.ts';
import { parseETag, sendWriteResult, versionHeaders } from './respond.ts';

/** update: PUT [base]/[type]/[id]; creates the resource when the id is new (update-as-create). */
export const update = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const id = req.params.id as string;
  const resource = bodyResource(req, type);
  if (resource.id !== id) throw badRequest(`Resource id "${resource.id ?? ''}" does not match the URL's "${id}"`, `${type}.id`);
  const { resource: stored, content, created } = await ctx.repo.update(resource, { ifMatch: parseETag(req.get('If-Match')) });
  const meta = stored.meta as { versionId: string; lastUpdated: string };
  versionHeaders(res, meta);
  res.setHeader('Location', `${fhirBase(ctx)}/${type}/${id}/_history/${meta.versionId}`);
  sendWriteResult(req, res, created ? 201 : 200, content, informational(`${created ? 'Created' : 'Updated'} ${type}/${id}`));
};
