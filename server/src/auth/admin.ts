import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { Database } from '../store/database.ts';
import { badRequest, forbidden } from '../fhir/outcome.ts';
import { auditTarget } from '../ops/audit.ts';
import { type AccessPolicy, isUnrestricted } from './access-policy.ts';
import { putClient, type ClientRegistration } from './clients.ts';
import type { UserStore } from './users.ts';

/**
 * `POST /admin/users` and `POST /admin/clients`, for tokens holding `system/*.*` (after requireToken).
 * The audit trail records each request (who, outcome) naming the user or client it was about.
 */
export function adminRouter(db: Database, users: UserStore): Router {
  const router = Router();
  router.use(express.json({ limit: '1mb', type: ['application/json', 'application/fhir+json'] }));
  const wrap = (handler: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) => {
    if (!isUnrestricted(res.locals.access as AccessPolicy, ['c', 'r', 'u', 'd', 's'])) return next(forbidden('The admin API needs a system/*.* token'));
    handler(req, res).catch((err: unknown) => next(err instanceof Error && !('status' in err) ? badRequest(err.message) : err));
  };
  router.post('/users', wrap(async (req, res) => {
    const { username, password, fhirUser } = (req.body ?? {}) as Record<string, string>;
    if (typeof username === 'string') auditTarget(res, username.slice(0, 200));
    const user = await users.put(username, password, fhirUser);
    res.status(201).json(user);
  }));
  router.post('/clients', wrap(async (req, res) => {
    const registration = req.body as ClientRegistration;
    if (typeof registration?.client_id === 'string') auditTarget(res, registration.client_id.slice(0, 200));
    const metadata = await putClient(db, registration);
    const { client_secret: _secret, ...shown } = metadata; // never echo a secret
    res.status(201).json(shown);
  }));
  return router;
}
