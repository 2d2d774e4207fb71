import type { Request, Response } from 'express';
import { conditionalDelete } from '../store/conditional.ts';
import { type FhirContext, resourceType } from './context.ts';
import { badRequest, informational } from './outcome.ts';
import { sendJson } from './respond.ts';

/**
 * delete: DELETE [base]/[type]/[id]; a soft, versioned delete. Deleting what is gone succeeds.
 * DELETE [base]/[type]?criteria is the conditional delete of every match (up to a limit).
 */
export const remove = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const id = req.params.id as string | undefined;
  if (id) {
    const deleted = await ctx.repo.delete(type, id);
    if (deleted) res.setHeader('ETag', `W/"${deleted.versionId}"`);
    sendJson(req, res, 200, informational(deleted ? `Deleted ${type}/${id}` : `${type}/${id} was already absent`));
    return;
  }
  const criteria = new URL(req.originalUrl, 'http://x').search.slice(1);
  if (!criteria) throw badRequest('DELETE needs an id or search criteria');
  const deleted = await ctx.repo.transaction((w) => conditionalDelete(w, type, criteria, false));
  sendJson(req, res, 200, informational(`Deleted ${deleted.length} ${type} resource(s)`));
};
