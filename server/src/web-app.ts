import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { putClient } from './auth/clients.ts';
import type { Database } from './store/database.ts';

/** The Vigil app's OAuth client: public (PKCE), redirecting to the app's own origin only. */
export const APP_CLIENT_ID = 'vigil-app';
const DIST = fileURLToPath(new URL('../../app/dist/', import.meta.url));
/** Paths the app never owns: a miss there is the API's 404, not the app's index page. */
const API_PATHS = /^\/(fhir|oauth2|ingest|admin|metrics|healthz|readyz|auth|\.well-known|smart-style\.json)(\/|$)/;

export async function registerAppClient(db: Database, baseUrl: string): Promise<void> {
  await putClient(db, {
    client_id: APP_CLIENT_ID,
    client_name: 'Vigil',
    redirect_uris: [`${baseUrl}/callback`],
    scopes: 'user/*.cruds patient/*.cruds',
    launch_uri: `${baseUrl}/launch`,
  });
}

/**
 * The built app (app/dist) at `/`: hashed assets cached for a year, every other page path answered
 * with index.html so that the app's own routes work on reload. Until `npm run build -w app` has
 * produced it, those paths answer 404.
 */
export function webAppRouter(): Router {
  const router = express.Router();
  const built = (_req: Request, _res: Response, next: NextFunction) => next(existsSync(`${DIST}index.html`) ? undefined : 'router');
  router.use(built);
  router.use('/assets', express.static(`${DIST}assets`, { immutable: true, maxAge: '365d', fallthrough: false }));
  router.use(express.static(DIST, { index: false, maxAge: '1h' }));
  router.get(/.*/, (req, res, next) => {
    if (API_PATHS.test(req.path) || !req.accepts('html')) return next();
    res.set('Cache-Control', 'no-cache').sendFile(`${DIST}index.html`);
  });
  return router;
}
