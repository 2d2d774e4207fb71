import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config.ts';
import { forbidden } from '../fhir/outcome.ts';
import type { Logger } from '../ops/logger.ts';
import type { Repository } from '../store/repository.ts';
import { type AccessPolicy, allowsAll, isUnrestricted } from './access-policy.ts';
import { adminRouter } from './admin.ts';
import { purgeExpired } from './adapter.ts';
import { requireToken, tokenVerifier, type TokenVerify } from './bearer.ts';
import { CareTeamPatients } from './care-team.ts';
import { putClient } from './clients.ts';
import { DEMO_CLINICIAN, DEMO_PASSWORD, DEMO_PATIENT, installDemoUsers } from './demo.ts';
import { fhirGuard } from './fhir-guard.ts';
import { interactionRouter } from './interactions.ts';
import { loadKeys } from './keys.ts';
import { createProvider, OAUTH_PREFIX, ROUTES } from './provider.ts';
import { smartConfiguration } from './smart-configuration.ts';
import { UserStore } from './users.ts';

export interface Auth {
  /** Mounts discovery, the authorization server, its pages and the admin API on the app. */
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

const OPEN_FHIR_PATHS = /^\/(metadata|\.well-known\/.*)$/;
const SMART_STYLE = { color_background: '#f8f9fa', color_error: '#c92a2a', color_highlight: '#1971c2', color_modal_backdrop: '', color_success: '#2f9e44', color_text: '#212529', dim_border_radius: '4px', dim_font_size: '16px', dim_spacing_size: '16px', font_family_body: 'system-ui, sans-serif', font_family_heading: 'system-ui, sans-serif' };

export async function createAuth(config: Config, repo: Repository, logger: Logger): Promise<Auth> {
  const db = repo.db;
  const issuer = config.baseUrl;
  const fhirBase = `${config.baseUrl}/fhir/R4`;
  const keys = await loadKeys(db);
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
  const provider = createProvider({ db, issuer, fhirBase, keys, users });
  provider.proxy = config.trustProxy;
  provider.use(smartTokenResponse(config.baseUrl));
  provider.on('server_error', (_ctx: unknown, err: unknown) => logger.error({ err }, 'authorization server error'));
  const callback = provider.callback();
  const verify = tokenVerifier({ issuer, audience: fhirBase, signingKeys: keys.signing, careTeams });
  const token = requireToken(verify);
  const guard = fhirGuard(db, config.baseUrl);
  const purge = setInterval(() => purgeExpired(db).catch((err: unknown) => logger.warn({ err }, 'purging expired oauth payloads failed')), 10 * 60 * 1000);
  purge.unref();

  return {
    users,
    verify,
    stop: () => clearInterval(purge),
    mount(app) {
      app.get('/fhir/R4/.well-known/smart-configuration', (_req, res) => {
        // application/json whatever the Accept header (SMART App Launch 2.2)
        res.set('Cache-Control', 'public, max-age=3600').type('application/json').send(JSON.stringify(smartConfiguration(issuer)));
      });
      app.get('/smart-style.json', (_req, res) => void res.json(SMART_STYLE));
      app.use(interactionRouter(provider, users, repo, careTeams));
      app.use('/admin', token, adminRouter(db, users));
      app.get(ROUTES.authorization, checkAudience(fhirBase));
      app.use((req, res, next) => {
        if (req.path.startsWith(`${OAUTH_PREFIX}/`) || req.path === '/.well-known/openid-configuration') return void callback(req as IncomingMessage, res as ServerResponse);
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

/**
 * The token response has no hook for SMART's context, so this runs after oidc-provider's token
 * route: `patient`, `need_patient_banner`, `smart_style_url` from the access token just issued, and
 * `Pragma: no-cache` beside the library's `Cache-Control: no-store`.
 */
function smartTokenResponse(baseUrl: string) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    await next();
    if (ctx.oidc?.route !== 'token') return;
    ctx.set('Pragma', 'no-cache');
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.status !== 200 || !body || typeof body.access_token !== 'string') return;
    const payload = JSON.parse(Buffer.from(body.access_token.split('.')[1] ?? '', 'base64url').toString() || '{}') as Record<string, unknown>;
    if (typeof payload.patient === 'string') {
      body.patient = payload.patient;
      body.need_patient_banner = true;
    }
    if (payload.sub !== payload.client_id) body.smart_style_url = `${baseUrl}/smart-style.json`;
  };
}

