import type { Request, Response } from 'express';
import { conditionalCreate } from '../store/conditional.ts';
import { requestAccess } from './access.ts';
import { acknowledge } from './acknowledgement.ts';
import { bodyResource, type FhirContext, fhirBase, resourceType } from './context.ts';
import { informational } from './outcome.ts';
import { sendWriteResult, versionHeaders } from './respond.ts';

/** create: POST [base]/[type]; the server assigns the id. `If-None-Exist` makes it conditional. */
export const create = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const resource = acknowledge(undefined, { ...bodyResource(req, type), id: undefined }, requestAccess(res).user);
  const criteria = req.get('If-None-Exist');
  const { resource: stored, content, created } = criteria
    ? await ctx.repo.transaction((w) => conditionalCreate(w, resource, criteria))
    : await ctx.repo.create(resource);
  const meta = stored.meta as { versionId: string; lastUpdated: string };
  versionHeaders(res, meta);
  res.setHeader('Location', `${fhirBase(ctx)}/${type}/${stored.id}/_history/${meta.versionId}`);
  sendWriteResult(req, res, created ? 201 : 200, content, informational(`${created ? 'Created' : 'Found existing'} ${type}/${stored.id}`));
};
