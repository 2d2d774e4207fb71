import type { Request, Response } from 'express';
import { type FhirContext, resourceType } from './context.ts';
import { informational } from './outcome.ts';
import { sendJson } from './respond.ts';

/** delete: DELETE [base]/[type]/[id]; a soft, versioned delete. Deleting what is gone succeeds. */
export const remove = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const deleted = await ctx.repo.delete(type, req.params.id as string);
  if (deleted) res.setHeader('ETag', `W/"${deleted.versionId}"`);
  sendJson(req, res, 200, informational(deleted ? `Deleted ${type}/${req.params.id}` : `${type}/${req.params.id} was already absent`));
};
