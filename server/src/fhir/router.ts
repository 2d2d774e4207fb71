import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { capabilityStatement } from './capabilities.ts';
import type { FhirContext } from './context.ts';
import { create } from './create.ts';
import { remove } from './delete.ts';
import { history } from './history.ts';
import { read } from './read.ts';
import { checkFormat, sendJson } from './respond.ts';
import { searchSystem } from './search-system.ts';
import { searchType } from './search-type.ts';
import { update } from './update.ts';
import { vread } from './vread.ts';
import { methodNotAllowed } from './outcome.ts';
import { patch } from './patch.ts';
import { batchOrTransaction } from './transaction.ts';
import { validate } from './operations/validate.ts';
import { operationRoutes } from './operations/index.ts';

type Handler = (req: Request, res: Response) => Promise<void>;
/** Routes of other parts (subscriptions), registered before the generic `/:type` and `/:type/:id` ones. */
export type ExtraRoutes = (router: Router, wrap: (handler: Handler) => RequestHandler) => void;

/** A body parser for every FHIR request except batch/transaction, whose Bundle is read as it streams in. */
export const unlessBundlePost = (parser: RequestHandler): RequestHandler => (req, res, next) =>
  req.method === 'POST' && req.path === '/' ? next() : parser(req, res, next);

/** The FHIR R4 REST API: one route per interaction of the spec's table. */
export function fhirRouter(ctx: FhirContext, options: { version: string; maxBodyBytes: number }, extraRoutes?: ExtraRoutes): Router {
  const router = Router();
  const wrap = (handler: Handler) => (req: Request, res: Response, next: NextFunction) => {
    // remembered now: once an error leaves the router, Express no longer knows the route
    res.locals.route = `${req.baseUrl}${String(req.route?.path ?? '')}`;
    try {
      checkFormat(req);
    } catch (err) {
      next(err);
      return;
    }
    handler(req, res).catch(next);
  };
  const metadata = capabilityStatement(ctx.baseUrl, options.version);
  router.get('/metadata', wrap(async (req, res) => sendJson(req, res, 200, metadata)));
  extraRoutes?.(router, wrap);
  router.post('/', wrap(batchOrTransaction(ctx, options.maxBodyBytes)));
  router.get('/', wrap(searchSystem(ctx)));
  router.post('/_search', wrap(searchSystem(ctx)));
  router.get('/_history', wrap(history(ctx, 'system')));
  // The type-level interactions (the busiest: create, search) ahead of the operations, none of which has a one-segment path.
  router.get('/:type', wrap(searchType(ctx)));
  router.post('/:type', wrap(create(ctx)));
  router.put('/:type', wrap(update(ctx)));
  router.patch('/:type', wrap(patch(ctx)));
  router.delete('/:type', wrap(remove(ctx)));
  router.post('/:type/$validate', wrap(validate(ctx)));
  router.post('/:type/:id/$validate', wrap(validate(ctx)));
  operationRoutes(router, ctx, wrap);
  router.post('/:type/_search', wrap(searchType(ctx)));
  router.get('/:type/_history', wrap(history(ctx, 'type')));
  router.get('/:type/:id', wrap(read(ctx)));
  router.put('/:type/:id', wrap(update(ctx)));
  router.patch('/:type/:id', wrap(patch(ctx)));
  router.delete('/:type/:id', wrap(remove(ctx)));
  router.get('/:type/:id/_history', wrap(history(ctx, 'instance')));
  router.get('/:type/:id/_history/:vid', wrap(vread(ctx)));
  router.all('/{*rest}', wrap(async () => {
    throw methodNotAllowed('This interaction is not supported');
  }));
  return router;
}
