import type { Request, Response } from 'express';
import { type FhirContext, resourceType } from './context.ts';
import { sendJson, versionHeaders } from './respond.ts';

/** vread: GET [base]/[type]/[id]/_history/[vid]. */
export const vread = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const version = await ctx.repo.vread(resourceType(req), req.params.id as string, req.params.vid as string);
  versionHeaders(res, version);
  sendJson(req, res, 200, version.content as string);
};
