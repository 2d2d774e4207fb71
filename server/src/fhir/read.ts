import type { Request, Response } from 'express';
import { type FhirContext, resourceType } from './context.ts';
import { subset } from './elements.ts';
import { sendJson, versionHeaders } from './respond.ts';

/** read: GET [base]/[type]/[id], with conditional read (If-None-Match, If-Modified-Since → 304). */
export const read = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const version = await ctx.repo.readVersion(resourceType(req), req.params.id as string);
  versionHeaders(res, version);
  const ifNoneMatch = req.get('If-None-Match');
  const ifModifiedSince = req.get('If-Modified-Since');
  if (
    (ifNoneMatch && ifNoneMatch.replace(/^W\//, '') === `"${version.versionId}"`) ||
    (ifModifiedSince && Date.parse(version.lastUpdated) < Date.parse(ifModifiedSince) + 1000)
  ) {
    res.status(304).end();
    return;
  }
  sendJson(req, res, 200, subset(version.content as string, req.query._summary as string | undefined, elementsParam(req)));
};

export function elementsParam(req: Request): string[] | undefined {
  const e = req.query._elements;
  return typeof e === 'string' ? e.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
}
