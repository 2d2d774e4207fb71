import compression from 'compression';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { SMART_CONFIGURATION, type Auth } from './auth/index.ts';
import type { Config } from './config.ts';
import type { FhirContext } from './fhir/context.ts';
import { BearerError } from './auth/bearer.ts';
import { FhirError } from './fhir/outcome.ts';
import { FHIR_JSON } from './fhir/respond.ts';
import { fhirRouter, unlessBundlePost, type ExtraRoutes } from './fhir/router.ts';
import type { AuditTrail } from './ops/audit.ts';
import { healthRouter } from './ops/health.ts';
import type { Logger } from './ops/logger.ts';
import type { createMetrics } from './ops/metrics.ts';
import { webAppRouter } from './web-app.ts';

export interface AppParts {
  config: Config;
  fhir: FhirContext;
  logger: Logger;
  version: string;
  metrics: ReturnType<typeof createMetrics>;
  /** Further routers mounted at their paths (device ingest, …); all need an access token. */
  routers: Record<string, express.Router>;
  /** Routers that authenticate their callers themselves (an external FHIR server's notifications to the bots). */
  hooks?: Record<string, express.Router>;
  /** Authorization server and access control. */
  auth: Auth;
  /** FHIR routes of other parts (subscriptions). */
  fhirRoutes?: ExtraRoutes;
  /** Records an AuditEvent for every FHIR and gateway request. */
  audit: AuditTrail;
}

/** The HTTP surface: health, metrics and the FHIR API. The middleware chain stays short on purpose. */
export function createApp({ config, fhir, logger, version, metrics, routers, hooks = {}, auth, fhirRoutes, audit }: AppParts): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // behind one trusted proxy, req.ip (audit, sign-in) is the address that proxy saw, as for the token endpoint
  if (config.trustProxy) app.set('trust proxy', 1);
  app.use(auth.edge);
  app.use(metrics.middleware);
  app.use(negotiatedCompression());
  // The API first: every layer ahead of it is tried on every request. Only SMART discovery, under
  // the FHIR base but open, must come before it.
  app.get(SMART_CONFIGURATION, auth.smartConfiguration);
  app.use(
    '/fhir/R4',
    audit.middleware,
    // batch and transaction Bundles are parsed as they stream in, by their handler
    unlessBundlePost(express.json({ type: ['application/json', FHIR_JSON, 'application/json-patch+json'], limit: config.maxBodyBytes, strict: false })),
    unlessBundlePost(express.urlencoded({ extended: false, limit: config.maxBodyBytes })),
    auth.fhirAccess,
    fhirRouter(fhir, { version, maxBodyBytes: config.maxBodyBytes }, fhirRoutes),
  );
  for (const [path, router] of Object.entries(routers)) app.use(path, audit.middleware, ...auth.ingestAccess, router);
  for (const [path, router] of Object.entries(hooks)) app.use(path, audit.middleware, router);
  app.use(healthRouter(fhir.repo.db));
  app.get('/metrics', auth.metricsAccess, async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  auth.mount(app);
  app.use(webAppRouter());
  app.use(errorHandler(logger));
  return app;
}

/**
 * gzip/deflate/br for bodies of 4 KiB and more (searches, history, $everything): below that, on a
 * LAN, compressing costs the server more time than it saves on the wire. A request that accepts no
 * encoding skips the middleware altogether, which otherwise wraps every response.
 */
function negotiatedCompression(): RequestHandler {
  const compress = compression({ threshold: 4096 });
  return (req, res, next) => (req.headers['accept-encoding'] ? compress(req, res, next) : next());
}

interface HttpError { type?: string; status?: number; code?: string; message?: string }

/** Every failure becomes an OperationOutcome; only unexpected ones are 500s, and they are logged. */
function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const fhirError = toFhirError(err as HttpError);
    if (!fhirError) {
      logger.error({ err, method: req.method, url: req.originalUrl }, 'request failed');
    }
    if (err instanceof BearerError) res.setHeader('WWW-Authenticate', err.challenge);
    const e = fhirError ?? new FhirError(500, [{ severity: 'fatal', code: 'exception', diagnostics: 'Internal server error' }]);
    res.status(e.status).type(FHIR_JSON).send(JSON.stringify(e.outcome));
  };
}

function toFhirError(err: HttpError): FhirError | undefined {
  if (err instanceof FhirError) return err;
  if (err.type === 'entity.parse.failed') return new FhirError(400, [{ severity: 'error', code: 'structure', diagnostics: `Malformed JSON: ${err.message}` }]);
  if (err.type === 'entity.too.large') return new FhirError(413, [{ severity: 'error', code: 'too-costly', diagnostics: 'Request body is larger than the configured limit' }]);
  if (err.type === 'charset.unsupported' || err.type === 'encoding.unsupported') return new FhirError(415, [{ severity: 'error', code: 'not-supported', diagnostics: err.message }]);
  // the router's percent-decoding of a path segment (`/ingest/%ZZ`)
  if (err instanceof URIError) return new FhirError(400, [{ severity: 'error', code: 'invalid', diagnostics: err.message }]);
  // PostgreSQL errors caused by the request's data rather than by the server
  if (err.code === '23505') return new FhirError(409, [{ severity: 'error', code: 'conflict', diagnostics: 'A resource with this id already exists' }]);
  if (err.code && /^22/.test(err.code)) return new FhirError(400, [{ severity: 'error', code: 'invalid', diagnostics: `Invalid value: ${err.message}` }]);
  return undefined;
}
