import { randomBytes } from 'node:crypto';
import type { Request, RequestHandler, Response, Router } from 'express';
import type { Bundle, Parameters, Resource, Subscription } from '@medplum/fhirtypes';
import { bodyResource, fhirBase, type FhirContext } from '../fhir/context.ts';
import { create } from '../fhir/create.ts';
import { badRequest, notFound } from '../fhir/outcome.ts';
import { sendJson } from '../fhir/respond.ts';
import { update } from '../fhir/update.ts';
import { quote } from '../store/columns.ts';
import { isoTimestamp } from '../store/database.ts';
import { historyTable } from '../store/schema.ts';
import { notificationBundle, statusParameters, type NotificationEvent } from './notification.ts';
import { parseSubscription, type Content, type ParsedSubscription } from './parse.ts';
import { WS_PATH } from './websocket.ts';

type Handler = (req: Request, res: Response) => Promise<void>;
type Wrap = (handler: Handler) => RequestHandler;

const TOKEN_TTL_MS = 60 * 60 * 1000;
const MAX_EVENTS = 1000;
const CLIENT_STATUSES = new Set(['requested', 'active', 'off']);

/**
 * Subscription routes, registered before the generic `/:type/:id` ones: validated create and
 * update, and the Backport IG operations `$status`, `$events`, `$get-ws-binding-token`.
 */
export function subscriptionRoutes(router: Router, ctx: FhirContext, wrap: Wrap, allowPrivate: boolean): void {
  const validated = (next: Handler): Handler => async (req, res) => {
    const sub = bodyResource(req, 'Subscription') as Subscription;
    if (!CLIENT_STATUSES.has(sub.status)) throw badRequest(`Subscription.status must be requested, active or off, not "${sub.status}"`, 'Subscription.status');
    parseSubscription(sub, allowPrivate);
    // the generic handlers read the type from the path, which these routes spell out
    req.params.type = 'Subscription';
    await next(req, res);
  };
  router.post('/Subscription', wrap(validated(create(ctx))));
  router.put('/Subscription/:id', wrap(validated(update(ctx))));
  const op = (path: string, handler: Handler) => {
    for (const p of [path, path.replace('$', '%24')]) {
      router.get(p, wrap(handler));
      router.post(p, wrap(handler));
    }
  };
  op('/Subscription/$status', status(ctx, allowPrivate));
  op('/Subscription/:id/$status', status(ctx, allowPrivate));
  op('/Subscription/:id/$events', events(ctx, allowPrivate));
  op('/Subscription/$get-ws-binding-token', bindingToken(ctx));
  op('/Subscription/:id/$get-ws-binding-token', bindingToken(ctx));
}

/** Operation inputs from the query string and a Parameters body alike. */
function inputs(req: Request, name: string): string[] {
  const values = new URL(req.originalUrl, 'http://x').searchParams.getAll(name).flatMap((v) => v.split(','));
  const body = req.body as Parameters | undefined;
  if (body?.resourceType === 'Parameters') {
    for (const p of body.parameter ?? []) {
      if (p.name === name) values.push(String(p.valueId ?? p.valueString ?? p.valueCode ?? ''));
    }
  }
  return values.filter(Boolean);
}

async function loadSubscriptions(ctx: FhirContext, ids: string[]): Promise<Subscription[]> {
  const rows = ids.length
    ? await ctx.repo.db.query<{ content: string }>('SELECT content FROM "Subscription" WHERE NOT deleted AND id = ANY($1) ORDER BY id', [ids])
    : await ctx.repo.db.query<{ content: string }>('SELECT content FROM "Subscription" WHERE NOT deleted ORDER BY id LIMIT 1000');
  return rows.map((r) => JSON.parse(r.content) as Subscription);
}

async function eventCount(ctx: FhirContext, id: string): Promise<number> {
  const [row] = await ctx.repo.db.query<{ n: string }>('SELECT coalesce(max(event_number), 0)::text AS n FROM subscription_event WHERE subscription_id = $1', [id]);
  return Number(row.n);
}

/** Parsing for display: a subscription stored around validation still gets a status. */
function describe(sub: Subscription, allowPrivate: boolean): ParsedSubscription {
  try {
    return parseSubscription(sub, allowPrivate);
  } catch {
    return { id: sub.id ?? '', status: sub.status, triggers: [], channel: { type: 'rest-hook', headers: [], content: 'empty' } };
  }
}

const status = (ctx: FhirContext, allowPrivate: boolean): Handler => async (req, res) => {
  const id = req.params.id as string | undefined;
  const ids = id ? [id] : inputs(req, 'id');
  const statuses = id ? [] : inputs(req, 'status');
  const subs = (await loadSubscriptions(ctx, ids)).filter((s) => statuses.length === 0 || statuses.includes(s.status));
  if (id && subs.length === 0) throw notFound(`Subscription/${id} not found`);
  const entry = await Promise.all(
    subs.map(async (s) => {
      const resource = statusParameters({
        sub: describe(s, allowPrivate),
        fhirBase: fhirBase(ctx),
        type: 'query-status',
        eventsSinceStart: await eventCount(ctx, s.id as string),
        content: 'id-only',
        error: s.error,
      });
      return { fullUrl: `urn:uuid:${resource.id}`, resource, search: { mode: 'match' as const } };
    }),
  );
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
  sendJson(req, res, 200, bundle);
};

const events = (ctx: FhirContext, allowPrivate: boolean): Handler => async (req, res) => {
  const id = req.params.id as string;
  const [sub] = await loadSubscriptions(ctx, [id]);
  if (!sub) throw notFound(`Subscription/${id} not found`);
  const parsed = describe(sub, allowPrivate);
  const number = (name: string, fallback: number): number => {
    const value = inputs(req, name)[0];
    if (value === undefined) return fallback;
    if (!/^\d{1,15}$/.test(value)) throw badRequest(`${name} must be an event number`, name);
    return Number(value);
  };
  const total = await eventCount(ctx, id);
  const until = number('eventsUntilNumber', total);
  const since = Math.max(number('eventsSinceNumber', Math.max(1, until - MAX_EVENTS + 1)), until - MAX_EVENTS + 1);
  const content = (inputs(req, 'content')[0] ?? parsed.channel.content) as Content;
  if (!['empty', 'id-only', 'full-resource'].includes(content)) throw badRequest('content must be empty, id-only or full-resource', 'content');
  const rows = await ctx.repo.db.query<{ n: string; t: string; focus_type: string; focus_id: string; focus_version: number; interaction: string }>(
    `SELECT event_number::text AS n, created_at::text AS t, focus_type, focus_id, focus_version, interaction FROM subscription_event
     WHERE subscription_id = $1 AND event_number BETWEEN $2 AND $3 ORDER BY event_number`,
    [id, since, until],
  );
  const list: NotificationEvent[] = [];
  for (const r of rows) {
    const focus = { resourceType: r.focus_type, id: r.focus_id, versionId: Number(r.focus_version), interaction: r.interaction };
    let resource: Resource | undefined;
    if (content === 'full-resource') {
      const [v] = await ctx.repo.db.query<{ content: string | null }>(
        `SELECT content FROM ${quote(historyTable(r.focus_type))} WHERE id = $1 AND version_id = $2`,
        [r.focus_id, r.focus_version],
      );
      resource = v?.content ? (JSON.parse(v.content) as Resource) : undefined;
    }
    list.push({ number: Number(r.n), timestamp: isoTimestamp(r.t), focus, resource });
  }
  sendJson(req, res, 200, notificationBundle({ sub: parsed, fhirBase: fhirBase(ctx), type: 'query-event', eventsSinceStart: total, events: list, content }));
};

const bindingToken = (ctx: FhirContext): Handler => async (req, res) => {
  const id = req.params.id as string | undefined;
  const ids = id ? [id] : inputs(req, 'id');
  if (ids.length === 0) throw badRequest('Name the subscriptions with id', 'id');
  const subs = await loadSubscriptions(ctx, ids);
  const missing = ids.filter((i) => !subs.some((s) => s.id === i && s.channel.type === 'websocket'));
  if (missing.length) throw badRequest(`No websocket subscription ${missing.join(', ')}`, 'id');
  const token = randomBytes(24).toString('base64url');
  const expires = new Date(Date.now() + TOKEN_TTL_MS);
  await ctx.repo.db.query('DELETE FROM subscription_ws_token WHERE expires_at < now()');
  await ctx.repo.db.query('INSERT INTO subscription_ws_token (token, subscription_ids, expires_at) VALUES ($1, $2, $3)', [token, ids, expires.toISOString()]);
  const parameters: Parameters = {
    resourceType: 'Parameters',
    parameter: [
      { name: 'token', valueString: token },
      { name: 'expiration', valueDateTime: expires.toISOString() },
      ...ids.map((s) => ({ name: 'subscription', valueString: s })),
      { name: 'websocket-url', valueUrl: websocketUrl(ctx.baseUrl) },
    ],
  };
  sendJson(req, res, 200, parameters);
};

export const websocketUrl = (baseUrl: string): string => `${baseUrl.replace(/^http/, 'ws')}${WS_PATH}`;
