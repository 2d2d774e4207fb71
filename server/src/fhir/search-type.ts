import type { Request, Response } from 'express';
import { executeSearch, type Restriction } from '../store/search/execute.ts';
import { parseSearch } from '../store/search/query.ts';
import { bundleText, outcomeEntry, type BundleEntryText } from './bundle.ts';
import { type FhirContext, fhirBase, resourceType, searchParams } from './context.ts';
import { subset } from './elements.ts';
import { isLenient, sendJson } from './respond.ts';

/** search-type: GET [base]/[type]?… and POST [base]/[type]/_search. */
export const searchType = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const params = searchParams(req);
  const query = parseSearch(type, params, isLenient(req));
  // the access policy's SQL limit, set by the auth layer (server/src/auth/fhir-guard.ts)
  const result = await executeSearch(ctx.repo.db, query, ctx.baseUrl, res.locals.restriction as Restriction | undefined);
  const base = fhirBase(ctx);
  const link = (cursor?: string): string => {
    const p = new URLSearchParams(params);
    p.delete('_cursor');
    if (cursor) p.set('_cursor', cursor);
    const qs = p.toString();
    return `${base}/${type}${qs ? `?${qs}` : ''}`;
  };
  const links = [{ relation: 'self', url: link(query.cursor) }];
  if (result.next) links.push({ relation: 'next', url: link(result.next) });
  if (result.previous) links.push({ relation: 'previous', url: link(result.previous) });
  const entries: BundleEntryText[] = [
    ...result.matches.map((m) => ({
      fullUrl: `${base}/${m.resourceType}/${m.id}`,
      resource: subset(m.content, query.summary, query.elements),
      search: { mode: 'match' as const },
    })),
    ...result.included.map((m) => ({
      fullUrl: `${base}/${m.resourceType}/${m.id}`,
      resource: subset(m.content, query.summary, query.elements),
      search: { mode: 'include' as const },
    })),
  ];
  if (query.ignored.length) {
    entries.push(outcomeEntry({
      resourceType: 'OperationOutcome',
      issue: query.ignored.map((p) => ({ severity: 'warning', code: 'not-supported', diagnostics: `Ignored unknown or invalid search parameter "${p}"`, expression: [p] })),
    }));
  }
  sendJson(req, res, 200, bundleText('searchset', links, entries, result.total));
};
