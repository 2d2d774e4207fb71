import type { Request, Response } from 'express';
import { bodyResource, type FhirContext, fhirBase, resourceType } from './context.ts';
import { informational } from './outcome.ts';
import { sendWriteResult, versionHeaders } from './respond.ts';

/** create: POST [base]/[type]; the server assigns the id. */
export const create = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const resource = bodyResource(req, type);
  const { resource: stored, content } = await ctx.repo.create({ ...resource, id: undefined });
  const meta = stored.meta as { versionId: string; lastUpdated: string };
  versionHeaders(res, meta);
  res.setHeader('Location', `${fhirBase(ctx)}/${type}/${stored.id}/_history/${meta.versionId}`);
  sendWriteResult(req, res, 201, content, informational(`Created ${type}/${stored.id}`));
};
