import type { SearchResult } from '../store/search/execute.ts';
import type { SearchQuery } from '../store/search/query.ts';
import { bundleText, outcomeEntry, type BundleEntryText } from './bundle.ts';
import { type FhirContext, fhirBase } from './context.ts';
import { subset } from './elements.ts';

/**
 * The searchset Bundle of one page: matches, then includes, with self/next/previous links that
 * repeat the search at `path` (a type, or '' for the whole system), and an OperationOutcome entry
 * for the parameters a lenient search ignored. The links leave those out: R4 has them carry only
 * the parameters the search used.
 */
export function searchsetText(ctx: FhirContext, path: string, params: URLSearchParams, query: SearchQuery, result: SearchResult): string {
  const base = fhirBase(ctx);
  const link = (cursor?: string): string => {
    const p = new URLSearchParams(params);
    p.delete('_cursor');
    for (const [key, value] of query.ignored) p.delete(key, value);
    if (cursor) p.set('_cursor', cursor);
    const qs = p.toString();
    return `${base}${path ? `/${path}` : ''}${qs ? `?${qs}` : ''}`;
  };
  const links = [{ relation: 'self', url: link(query.cursor) }];
  if (result.next) links.push({ relation: 'next', url: link(result.next) });
  if (result.previous) links.push({ relation: 'previous', url: link(result.previous) });
  const entry = (mode: 'match' | 'include') => (m: { resourceType: string; id: string; content: string }): BundleEntryText => ({
    fullUrl: `${base}/${m.resourceType}/${m.id}`,
    resource: subset(m.content, query.summary, query.elements),
    search: { mode },
  });
  const entries = [...result.matches.map(entry('match')), ...result.included.map(entry('include'))];
  if (query.ignored.length) {
    entries.push(outcomeEntry({
      resourceType: 'OperationOutcome',
      issue: query.ignored.map(([p]) => ({ severity: 'warning', code: 'not-supported', diagnostics: `Ignored unknown or invalid search parameter "${p}"`, expression: [p] })),
    }));
  }
  return bundleText('searchset', links, entries, result.total);
}
