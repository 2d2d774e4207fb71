import type { OperationOutcome } from '@medplum/fhirtypes';

/** Search and history Bundles are assembled as text around the stored JSON, which is never re-parsed. */
export interface BundleEntryText {
  fullUrl?: string;
  resource?: string;
  search?: { mode: 'match' | 'include' | 'outcome' };
  request?: { method: string; url: string };
  response?: { status: string; etag?: string; lastModified?: string };
}

export function bundleText(
  type: 'searchset' | 'history',
  links: { relation: string; url: string }[],
  entries: BundleEntryText[],
  total?: number,
): string {
  const head = { resourceType: 'Bundle', type, ...(total !== undefined ? { total } : {}), link: links };
  const body = entries.map((e) => {
    const parts: string[] = [];
    if (e.fullUrl) parts.push(`"fullUrl":${JSON.stringify(e.fullUrl)}`);
    if (e.resource) parts.push(`"resource":${e.resource}`);
    if (e.search) parts.push(`"search":${JSON.stringify(e.search)}`);
    if (e.request) parts.push(`"request":${JSON.stringify(e.request)}`);
    if (e.response) parts.push(`"response":${JSON.stringify(e.response)}`);
    return `{${parts.join(',')}}`;
  });
  return `${JSON.stringify(head).slice(0, -1)},"entry":[${body.join(',')}]}`;
}

export function outcomeEntry(outcome: OperationOutcome): BundleEntryText {
  return { resource: JSON.stringify(outcome), search: { mode: 'outcome' } };
}
