import type { Request, Response } from 'express';
import { executeSystemSearch, type Restriction } from '../store/search/execute.ts';
import { parseSystemSearch } from '../store/search/query.ts';
import { type FhirContext, searchParams } from './context.ts';
import { isLenient, sendJson } from './respond.ts';
import { searchsetText } from './searchset.ts';

/**
 * search-system: GET [base]?… and POST [base]/_search, over the types `_type` lists (every type
 * when absent) with the parameters they all share (`_id`, `_lastUpdated`, `_tag`, `_profile`,
 * `_security`, `_source`, and any other every listed type has), paged across types.
 */
export const searchSystem = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const params = searchParams(req);
  const queries = parseSystemSearch(params, isLenient(req));
  // limited type by type, exactly as a search of each type would be (server/src/auth/fhir-guard.ts)
  const result = await executeSystemSearch(ctx.repo.db, queries, ctx.baseUrl, res.locals.restriction as Restriction | undefined);
  sendJson(req, res, 200, searchsetText(ctx, '', params, queries[0], result));
};
