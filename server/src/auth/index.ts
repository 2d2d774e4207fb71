import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config.ts';
import { forbidden } from '../fhir/outcome.ts';
import type { AuditTrail } from '../ops/audit.ts';
import type { Logger } from '../ops/logger.ts';
import type { SecurityEvent } from '../ops/security-audit.ts';
import type { Database } from '../store/database.ts';
import type { Repository } from '../store/repository.ts';
import { accessTokenEndpoints } from './access-token-endpoints.ts';
import { type AccessPolicy, allowsAll, isUnrestricted } from './access-policy.ts';
import { adminRouter } from './admin.ts';
import { purgeExpired } from './adapter.ts';
import { requireToken, tokenVerifier, type TokenVerify } from './bearer.ts';
import { CareTeamPatients } from './care-team.ts';
import { putClient } from './clients.ts';
import { DEMO_CLINICIAN, DEMO_PASSWORD, DEMO_PATIENT, installDemoUsers } from './demo.ts';
import { ehrLaunchRouter } from './ehr-launch.ts';
import { fhirGuard } from './fhir-guard.ts';
import { edgeHeaders } from './http-security.ts';
import { interactionRouter } from './interactions.ts';
import { KeyRing } from './keys.ts';
import { loadLaunchContext } from './launch-context.ts';
import { createProvider, OAUTH_PREFIX, ROUTES, USER_TOKEN_TTL } from './provider.ts';
import { clientIp, memoryCounter, rateLimit, redisCounter } from './rate-limit.ts';
import { RevocationList } from './revocation.ts';
import { smartConfiguration } from './smart-configuration.ts';
import { TrustedIssuers } from './trusted-issuers.ts';
import { UserStore } from './users.ts';

export interface Auth {
  /** First in the chain: security headers and CORS on every response. */
  edge: RequestHandler;
  /** GET SMART_CONFIGURATION: SMART discovery, mounted ahead of the FHIR API it sits under. */
  smartConfiguration: RequestHandler;
  /** Mounts the authorization server, its pages, EHR launch and the admin API on the app. */
  mount(app: Express): void;
  /** For /fhir/R4: a valid token (except metadata and discovery), then per-interaction access control. */
  fhirAccess: RequestHandler;
  /** For the device gateway and other routers: a valid token with the right system scope. */
  ingestAccess: RequestHandler[];
  /** /metrics: open on loopback, otherwise a token with a system scope. */
  metricsAccess: RequestHandler;
  verify: TokenVerify;
  users: UserStore;
  stop(): void;
}

export const SMART_CONFIGURATION = '/fhir/R4/.well-known/smart-configuration';
const OPEN_FHIR_PATHS = /^\/(metadata|\.well-known\/.*)$/;
const SMART_STYLE = { color_background: '#f8f9fa', color_error: '#c92a2a', color_highlight: '#1971c2', color_modal_backdrop: '', color_success: '#2f9e44', color_text: '#212529', dim_border_radius: '4px', dim_font_size: '16px', dim_spacing_size: '16px', font_family_body: 'system-ui, sans-serif', font_family_heading: 'system-ui, sans-serif' };

export async function createAuth(config: Config, repo: Repository, logger: Logger, audit: AuditTrail): Promise<Auth> {
  const db = repo.db;
  const issuer = config.baseUrl;
  const fhirBase = `${config.baseUrl}/fhir/R4`;
  const keys = await KeyRing.open(db, config.auth.keyRotationDays);
  const revocations = new RevocationList(db);
  await revocations.sync();
  const users = new UserStore(db);
  const careTeams = new CareTeamPatients(db, config.baseUrl);
  if (config.bootstrapClientId && config.bootstrapClientSecret) {
    await putClient(db, { client_id: config.bootstrapClientId, secret: config.bootstrapClientSecret, scopes: 'system/*.*' });
    logger.info({ clientId: config.bootstrapClientId }, 'bootstrap client registered');
  }
  if (config.demo) {
    await installDemoUsers(repo, users);
    logger.info({ users: [DEMO_CLINICIAN, DEMO_PATIENT], password: DEMO_PASSWORD }, 'demo users (demo mode only)');
  }
  const trusted = new TrustedIssuers(config.auth.trustedIssuers, fhirBase);
  const { verify, claims } = tokenVerifier({ issuer, audience: fhirBase, keys, revocations, trusted, careTeams });
  // oidc-provider holds its keys from construction on: a new key set means a new provider
  const build = (): { provider: Provider; callback: ReturnType<Provider['callback']> } => {
    const provider = createProvider({ db, issuer, fhirBase, keys, users });
    // one trusted proxy: the address it saw (X-Forwarded-For's last entry), as Express's req.ip and clientIp take it
    provider.proxy = config.trustProxy;
    provider.maxIpsCount = 1;
    provider.use(oauthAudit(audit.security)); // first: it sees the final answer
    provider.use(smartTokenResponse(db, config.baseUrl));
    provider.use(accessTokenEndpoints({ issuer, claims, revocations }));
    provider.on('server_error', (_ctx: unknown, err: unknown) => logger.error({ err }, 'authorization server error'));
    // a revoked refresh token (or a replayed one) revokes its grant, and so the access tokens it gave
    provider.on('grant.revoked', (_ctx: unknown, grantId: string) => {
      revocations.revoke(grantId, Math.floor(Date.now() / 1000) + USER_TOKEN_TTL).catch((err: unknown) => logger.error({ err }, 'recording a grant revocation failed'));
    });
    return { provider, callback: provider.callback() };
  };
  let current = build();
  keys.onChange(() => {
    current = build();
    logger.info({ kids: keys.signing.map((k) => k.kid) }, 'signing keys changed');
  });
  const warn = (what: string) => (err: unknown) => logger.warn({ err }, what);
  keys.start(warn('signing key check failed'));
  revocations.start(warn('reading the revocation list failed'));
  const token = requireToken(verify);
  const guard = fhirGuard(db, config.baseUrl);
  const ip = clientIp(config.trustProxy);
  // replicas share their counts in Redis when there is one
  const counter = config.redisUrl ? redisCounter(config.redisUrl, config.subscriptions.queuePrefix, warn('rate limit counter (Redis) unavailable')) : memoryCounter();
  const tokenLimit = rateLimit('token', config.auth.rateLimits.token, counter, ip, (res) => void res.json({ error: 'too_many_requests', error_description: 'Too many token requests; retry later' }));
  const loginLimit = rateLimit('login', config.auth.rateLimits.login, counter, ip, (res) => void res.type('text/plain').send('Too many sign-in attempts; retry later.'));
  const purge = setInterval(() => purgeExpired(db).catch(warn('purging expired oauth payloads failed')), 10 * 60 * 1000);
  purge.unref();

  return {
    users,
    verify,
    edge: edgeHeaders(config.baseUrl, config.auth.corsOrigins),
    stop() {
      clearInterval(purge);
      counter.close();
      keys.stop();
      revocations.stop();
    },
    smartConfiguration(_req, res) {
      // application/json whatever the Accept header (SMART App Launch 2.2)
      res.set('Cache-Control', 'public, max-age=3600').type('application/json').send(JSON.stringify(smartConfiguration(issuer)));
    },
    mount(app) {
      app.get('/smart-style.json', (_req, res) => void res.json(SMART_STYLE));
      app.post(ROUTES.token, tokenLimit);
      app.post(`${OAUTH_PREFIX}/interaction/:uid/login`, loginLimit);
      app.use(interactionRouter(() => current.provider, users, repo, careTeams, audit.security));
      app.use('/admin', audit.middleware, token, adminRouter(db, users));
      app.use('/auth', token, ehrLaunchRouter(db, config.baseUrl));
      app.get(ROUTES.authorization, checkAudience(fhirBase));
      app.use((req, res, next) => {
        if (req.path.startsWith(`${OAUTH_PREFIX}/`) || req.path === '/.well-known/openid-configuration') return void current.callback(req as IncomingMessage, res as ServerResponse);
        next();
      });
    },
    fhirAccess(req, res, next) {
      if (OPEN_FHIR_PATHS.test(req.path)) return next();
      token(req, res, (err?: unknown) => (err ? next(err) : guard(req, res, next)));
    },
    ingestAccess: [token, ingestGuard],
    metricsAccess(req, res, next) {
      if (isLoopback(req.socket.remoteAddress)) return next();
      token(req, res, (err?: unknown) => {
        if (err) return next(err);
        const policy = res.locals.access as AccessPolicy;
        next(policy.grants.some((g) => g.context === 'system') ? undefined : forbidden('/metrics needs a system scope'));
      });
    },
  };
}

/** Device ingest writes Observations: `system/Observation.c` or wider; mappings and dead letters need `system/*.*`. */
function ingestGuard(req: Request, res: Response, next: NextFunction): void {
  const policy = res.locals.access as AccessPolicy;
  const isIngest = req.method === 'POST' && /^\/[^/]+$/.test(req.path) && !req.path.startsWith('/dead-letters');
  const ok = isIngest ? allowsAll(policy, 'Observation', 'c') && policy.grants.some((g) => g.context === 'system') : isUnrestricted(policy, ['c', 'r', 'u', 'd', 's']);
  next(ok ? undefined : forbidden(isIngest ? 'Device ingest needs system/Observation.c' : 'Managing the gateway needs system/*.*'));
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/**
 * Authorization requests, before oidc-provider: SMART's `aud` must be this server's FHIR base (or no
 * code is issued) and becomes the RFC 8707 resource; `offline_access` gets the consent it needs.
 */
function checkAudience(fhirBase: string): RequestHandler {
  return (req, res, next) => {
    const url = new URL(req.originalUrl, 'http://x');
    const aud = url.searchParams.get('aud');
    if (aud !== null && aud.replace(/\/+$/, '') !== fhirBase) {
      res.status(400).type('text/plain').send('invalid_request: aud must be this server\'s FHIR base URL');
      return;
    }
    let changed = false;
    if (aud !== null && !url.searchParams.has('resource')) {
      url.searchParams.set('resource', fhirBase);
      changed = true;
    }
    // oidc-provider drops offline_access unless the request asks for consent; SMART apps do not say so
    if ((url.searchParams.get('scope') ?? '').split(' ').includes('offline_access') && !url.searchParams.has('prompt')) {
      url.searchParams.set('prompt', 'consent');
      changed = true;
    }
    if (changed) req.url = `${url.pathname}${url.search}`;
    next();
  };
}

const AUDITED_ROUTES: Record<string, { subtype: string; action: SecurityEvent['action'] }> = {
  token: { subtype: 'token', action: 'C' },
  introspection: { subtype: 'introspection', action: 'R' },
  revocation: { subtype: 'revocation', action: 'D' },
};

/**
 * An AuditEvent per token, introspection and revocation request: the client, the user whose grant
 * it was, the grant type and granted scope, or the OAuth error that refused it. Never the token,
 * code, secret or assertion.
 */
function oauthAudit(record: (event: SecurityEvent) => void) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    await next();
    const audited = AUDITED_ROUTES[ctx.oidc?.route ?? ''];
    if (!audited) return;
    const body = ctx.body as { error?: unknown; scope?: unknown } | undefined;
    const params = ctx.oidc.params ?? {};
    const text = (v: unknown): string | undefined => (typeof v === 'string' && v ? v.slice(0, 200) : undefined);
    const grantType = text(params.grant_type);
    const scope = ctx.status < 400 ? text(body?.scope) : undefined;
    const detail = [...(grantType ? [{ type: 'grant_type', valueString: grantType }] : []), ...(scope ? [{ type: 'scope', valueString: scope }] : [])];
    record({
      kind: 'oauth',
      ...audited,
      failure: ctx.status >= 400 ? (text(body?.error) ?? String(ctx.status)) : undefined,
      clientId: ctx.oidc.client?.clientId ?? text(params.client_id),
      username: text(ctx.oidc.entities.Grant?.accountId),
      address: ctx.ip,
      ...(detail.length ? { entity: [{ description: audited.subtype, detail }] } : {}),
    });
  };
}

/**
 * The token response has no hook for SMART's context, so this runs after oidc-provider's token
 * route: for a user's grant, `smart_style_url` and the grant's launch context (`patient`,
 * `encounter`, `need_patient_banner`); and `Pragma: no-cache` beside the library's
 * `Cache-Control: no-store`.
 */
function smartTokenResponse(db: Database, baseUrl: string) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    await next();
    if (ctx.oidc?.route !== 'token') return;
    ctx.set('Pragma', 'no-cache');
    const body = ctx.body as Record<string, unknown> | undefined;
    const grantId = ctx.oidc.entities.Grant?.jti as string | undefined;
    if (ctx.status !== 200 || !body || typeof body.access_token !== 'string' || !grantId) return;
    body.smart_style_url = `${baseUrl}/smart-style.json`;
    const context = await loadLaunchContext(db, grantId);
    if (context?.patient) {
      body.patient = context.patient;
      body.need_patient_banner = context.need_patient_banner ?? true;
    }
    if (context?.encounter) body.encounter = context.encounter;
  };
}

