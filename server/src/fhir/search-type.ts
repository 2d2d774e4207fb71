import type { Request, Response } from 'express';
import { executeSearch, type Restriction } from '../store/search/execute.ts';
import { parseSearch } from '../store/search/query.ts';
import { type FhirContext, resourceType, searchParams } from './context.ts';
import { isLenient, sendJson } from './respond.ts';
import { searchsetText } from './searchset.ts';

/** search-type: GET [base]/[type]?… and POST [base]/[type]/_search. */
export const searchType = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const params = searchParams(req);
  const query = parseSearch(type, params, isLenient(req));
  // the access policy's SQL limit, set by the auth layer (server/src/auth/fhir-guard.ts)
  const result = await executeSearch(ctx.repo.db, query, ctx.baseUrl, res.locals.restriction as Restriction | undefined);
  sendJson(req, res, 200, searchsetText(ctx, type, params, query, result));
};
