import { randomBytes } from 'node:crypto';
import type { Request, RequestHandler, Response, Router } from 'express';
import type { Bundle, Parameters, Resource, Subscription } from '@medplum/fhirtypes';
import type { AccessPolicy } from '../auth/access-policy.ts';
import { visible } from '../auth/fhir-guard.ts';
import { requestAccess } from '../fhir/access.ts';
import { fhirBase, type FhirContext } from '../fhir/context.ts';
import { badRequest, notFound } from '../fhir/outcome.ts';
import { sendJson } from '../fhir/respond.ts';
import type { WriteHooks } from '../fhir/router.ts';
import { quote } from '../store/columns.ts';
import { isoTimestamp } from '../store/database.ts';
import { historyTable } from '../store/schema.ts';
import { Params } from '../store/search/conditions.ts';
import type { Restriction } from '../store/search/execute.ts';
import { ownerKey } from './access.ts';
import { eventCount, type NumberedEvent } from './events.ts';
import { notificationBundle, statusParameters, type NotificationEvent } from './notification.ts';
import { parseSubscription, type Content, type ParsedSubscription } from './parse.ts';
import { WS_PATH } from './websocket.ts';
import { subscriptionWrite } from './write.ts';

type Handler = (req: Request, res: Response) => Promise<void>;
type Wrap = (handler: Handler) => RequestHandler;

const TOKEN_TTL_MS = 60 * 60 * 1000;
const MAX_EVENTS = 1000;

/**
 * Subscription routes, registered before the generic `/:type/:id` ones: the Backport IG operations
 * `$status`, `$events`, `$resend`, `$get-ws-binding-token`, each reaching only the caller's own
 * subscriptions (access.ts) unless the caller sees them all. Writes go through the generic routes,
 * every one of them under the returned write hook (write.ts).
 */
export function subscriptionRoutes(router: Router, ctx: FhirContext, wrap: Wrap, allowPrivate: boolean, resend: Resend): WriteHooks {
  const op = (path: string, handler: Handler) => {
    for (const p of [path, path.replace('$', '%24')]) {
      router.get(p, wrap(handler));
      router.post(p, wrap(handler));
    }
  };
  op('/Subscription/$status', status(ctx, allowPrivate));
  op('/Subscription/:id/$status', status(ctx, allowPrivate));
  op('/Subscription/:id/$events', events(ctx, allowPrivate));
  // $resend changes what the receiver gets: POST only
  for (const p of ['/Subscription/:id/$resend', '/Subscription/:id/%24resend']) router.post(p, wrap(resendEvents(ctx, allowPrivate, resend)));
  op('/Subscription/$get-ws-binding-token', bindingToken(ctx));
  op('/Subscription/:id/$get-ws-binding-token', bindingToken(ctx));
  return new Map([['Subscription', subscriptionWrite(ctx.baseUrl, allowPrivate)]]);
}

/** Operation inputs from the query string and a Parameters body alike. */
function inputs(req: Request, name: string): string[] {
  const values = new URL(req.originalUrl, 'http://x').searchParams.getAll(name).flatMap((v) => v.split(','));
  const body = req.body as Parameters | undefined;
  if (body?.resourceType === 'Parameters') {
    for (const p of body.parameter ?? []) {
      if (p.name === name) values.push(String(p.valueId ?? p.valueString ?? p.valueCode ?? p.valueInstant ?? ''));
    }
  }
  return values.filter(Boolean);
}

/** The named subscriptions (or all, up to 1000) among those the caller may see. */
async function loadSubscriptions(ctx: FhirContext, ids: string[], restriction: Restriction | undefined): Promise<Subscription[]> {
  const params = new Params();
  const where = ['NOT t.deleted'];
  if (ids.length) where.push(`t.id = ANY(${params.add(ids)})`);
  const limit = restriction?.('t', 'Subscription', params);
  if (limit) where.push(limit);
  const rows = await ctx.repo.db.query<{ content: string }>(`SELECT t.content FROM "Subscription" t WHERE ${where.join(' AND ')} ORDER BY t.id LIMIT 1000`, params.values);
  return rows.map((r) => JSON.parse(r.content) as Subscription);
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
  const subs = (await loadSubscriptions(ctx, ids, requestAccess(res).restriction)).filter((s) => statuses.length === 0 || statuses.includes(s.status));
  if (id && subs.length === 0) throw notFound(`Subscription/${id} not found`);
  const entry = await Promise.all(
    subs.map(async (s) => {
      const sub = describe(s, allowPrivate);
      const resource = statusParameters({
        sub,
        fhirBase: fhirBase(ctx),
        type: 'query-status',
        eventsSinceStart: sub.topic ? await eventCount(ctx.repo.db, s.id as string) : undefined,
        content: 'id-only',
        error: s.error,
      });
      return { fullUrl: `urn:uuid:${resource.id}`, resource, search: { mode: 'match' as const } };
    }),
  );
  const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
  sendJson(req, res, 200, bundle);
};

/** An event-number input of the operations, or the fallback. */
function eventNumber(req: Request, name: string, fallback: number): number {
  const value = inputs(req, name)[0];
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value)) throw badRequest(`${name} must be an event number`, name);
  return Number(value);
}

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** An instant input of the operations (FHIR `instant`: with seconds and a zone), or undefined. */
function instantInput(req: Request, name: string): string | undefined {
  const value = inputs(req, name)[0];
  if (value === undefined) return undefined;
  if (!INSTANT.test(value) || Number.isNaN(Date.parse(value))) throw badRequest(`${name} must be an instant (e.g. 2025-01-01T10:00:00Z)`, name);
  return new Date(value).toISOString();
}

/** `$events` and `$resend` name events by number, which only topic-based subscriptions give them. */
const UNNUMBERED = 'Only topic-based subscriptions number their events: a classic R4 subscription has none to list or resend';

const events = (ctx: FhirContext, allowPrivate: boolean): Handler => async (req, res) => {
  const id = req.params.id as string;
  const { restriction } = requestAccess(res);
  const [sub] = await loadSubscriptions(ctx, [id], restriction);
  if (!sub) throw notFound(`Subscription/${id} not found`);
  const parsed = describe(sub, allowPrivate);
  if (!parsed.topic) throw badRequest(UNNUMBERED);
  const number = (name: string, fallback: number): number => eventNumber(req, name, fallback);
  const total = await eventCount(ctx.repo.db, id);
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
    // the event matched under the owner's access then; the caller's access now decides what is shown
    if (content === 'full-resource' && (!restriction || (await visible(ctx.repo.db, restriction, r.focus_type, r.focus_id)))) {
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

/** Queues notifications again, each with its original event number, after the subscription's pending ones. */
export type Resend = (subscriptionId: string, events: NumberedEvent[]) => Promise<void>;

/**
 * `$resend` (Backport IG 1.2): the events of a number and/or time range are delivered again, in
 * order, on the subscription's channel, in one notification (backport-max-count at most per
 * notification); the answer says how many were queued. At most MAX_EVENTS
 * at a time, and only for an active topic-based subscription (only those number their events).
 */
const resendEvents = (ctx: FhirContext, allowPrivate: boolean, resend: Resend): Handler => async (req, res) => {
  const id = req.params.id as string;
  const [sub] = await loadSubscriptions(ctx, [id], requestAccess(res).restriction);
  if (!sub) throw notFound(`Subscription/${id} not found`);
  if (!describe(sub, allowPrivate).topic) throw badRequest(UNNUMBERED);
  if (sub.status !== 'active') throw badRequest(`Subscription/${id} is ${sub.status}, not active: nothing can be sent on it`, 'Subscription.status');
  const since = eventNumber(req, 'eventsSinceNumber', 1);
  const until = eventNumber(req, 'eventsUntilNumber', Number.MAX_SAFE_INTEGER);
  const rows = await ctx.repo.db.query<{ n: string; t: string; focus_type: string; focus_id: string; focus_version: number; interaction: NumberedEvent['focus']['interaction'] }>(
    `SELECT event_number::text AS n, created_at::text AS t, focus_type, focus_id, focus_version, interaction FROM subscription_event
     WHERE subscription_id = $1 AND event_number BETWEEN $2 AND $3
       AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz) AND ($5::timestamptz IS NULL OR created_at <= $5::timestamptz)
     ORDER BY event_number LIMIT ${MAX_EVENTS + 1}`,
    [id, since, until, instantInput(req, 'eventsSinceInstant') ?? null, instantInput(req, 'eventsUntilInstant') ?? null],
  );
  if (rows.length > MAX_EVENTS) throw badRequest(`The range holds more than ${MAX_EVENTS} events: resend it in parts`);
  await resend(id, rows.map((r) => ({
    number: Number(r.n),
    timestamp: isoTimestamp(r.t),
    focus: { resourceType: r.focus_type, id: r.focus_id, versionId: Number(r.focus_version), interaction: r.interaction },
  })));
  const range = rows.length ? ` (events ${rows[0].n} to ${rows[rows.length - 1].n})` : '';
  sendJson(req, res, 200, {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'information', code: 'informational', diagnostics: `${rows.length} event${rows.length === 1 ? '' : 's'} queued for resending${range}` }],
  });
};

const bindingToken = (ctx: FhirContext): Handler => async (req, res) => {
  const id = req.params.id as string | undefined;
  const ids = id ? [id] : inputs(req, 'id');
  if (ids.length === 0) throw badRequest('Name the subscriptions with id', 'id');
  const subs = await loadSubscriptions(ctx, ids, requestAccess(res).restriction);
  const missing = ids.filter((i) => !subs.some((s) => s.id === i && s.channel.type === 'websocket'));
  if (missing.length) throw badRequest(`No websocket subscription ${missing.join(', ')}`, 'id');
  // the token names whose subscriptions it binds (a subscription that changes hands stops binding)
  // and the client it was issued to (for the audit trail)
  const policy = res.locals.access as AccessPolicy;
  const part = (text: string) => Buffer.from(text).toString('base64url');
  const token = `${randomBytes(24).toString('base64url')}.${part(ownerKey(policy))}.${part(policy.clientId)}`;
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
