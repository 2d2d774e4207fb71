import type { Request, Response } from 'express';
import { readHistory } from '../store/history.ts';
import { bundleText } from './bundle.ts';
import { type FhirContext, fhirBase, resourceType } from './context.ts';
import { badRequest } from './outcome.ts';
import { sendJson } from './respond.ts';
import { DEFAULT_COUNT, MAX_COUNT } from '../store/search/query.ts';

/** history-instance, history-type and history-system: GET [base]/[type]/[id]/_history etc. */
export const history = (ctx: FhirContext, level: 'instance' | 'type' | 'system') => async (req: Request, res: Response): Promise<void> => {
  const type = level === 'system' ? undefined : resourceType(req);
  const id = level === 'instance' ? (req.params.id as string) : undefined;
  if (type && id) await ctx.repo.readVersion(type, id).catch((err: { status?: number }) => {
    if (err.status !== 410) throw err; // a deleted resource still has history
  });
  const str = (name: string): string | undefined => (typeof req.query[name] === 'string' ? (req.query[name] as string) : undefined);
  const countText = str('_count');
  const count = countText === undefined ? DEFAULT_COUNT : Number(countText);
  if (!Number.isInteger(count) || count < 0) throw badRequest('_count must be a non-negative integer', '_count');
  const page = await readHistory(ctx.repo.db, { resourceType: type, id, since: str('_since'), at: str('_at'), count: Math.min(count, MAX_COUNT), cursor: str('_cursor') });
  const base = fhirBase(ctx);
  const path = [base, type, id, '_history'].filter(Boolean).join('/');
  const link = (cursor?: string): string => {
    const p = new URLSearchParams(req.query as Record<string, string>);
    p.delete('_cursor');
    if (cursor) p.set('_cursor', cursor);
    const qs = p.toString();
    return `${path}${qs ? `?${qs}` : ''}`;
  };
  const links = [{ relation: 'self', url: link(str('_cursor')) }];
  if (page.next) links.push({ relation: 'next', url: link(page.next) });
  const entries = page.entries.map((e) => ({
    fullUrl: `${base}/${e.resourceType}/${e.id}`,
    resource: e.content ?? undefined,
    request: { method: e.deleted ? 'DELETE' : e.versionId === '1' ? 'POST' : 'PUT', url: e.versionId === '1' && !e.deleted ? e.resourceType : `${e.resourceType}/${e.id}` },
    response: { status: e.deleted ? '204' : e.versionId === '1' ? '201' : '200', etag: `W/"${e.versionId}"`, lastModified: new Date(e.lastUpdated).toISOString() },
  }));
  sendJson(req, res, 200, bundleText('history', links, entries));
};
