import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Resource } from '@medplum/fhirtypes';
import type { Sql } from '../store/database.ts';
import { capabilityStatement } from './capabilities.ts';
import { bodyResource, type FhirContext, resourceType } from './context.ts';
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
import { batchOrTransaction, replacedVersion } from './transaction.ts';
import { validate } from './operations/validate.ts';
import { operationRoutes } from './operations/index.ts';

type Handler = (req: Request, res: Response) => Promise<void>;

/**
 * A type's rule on what clients write, run by every REST write of the type (create, update and
 * conditional update, patch, batch and transaction entries) on the resource it would store, before
 * it is stored: it throws the answer (a 4xx) or returns what to store.
 */
export type WriteHook = (write: HookedWrite) => Promise<Resource>;

export interface HookedWrite {
  resource: Resource;
  /** The current version the write replaces, if any. */
  previous: () => Promise<Resource | undefined>;
  /** Reads as the write sees the database (in a batch or transaction, its earlier writes included). */
  sql: Sql;
  /** The request's response: the auth layer's access is in `res.locals`. */
  res: Response;
}

/** Write hooks by resource type. */
export type WriteHooks = ReadonlyMap<string, WriteHook>;

/**
 * Routes of other parts (subscriptions), registered before the generic `/:type` and `/:type/:id`
 * ones; they may return write hooks for their types.
 */
export type ExtraRoutes = (router: Router, wrap: (handler: Handler) => RequestHandler) => WriteHooks | void;

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
  const hooks = extraRoutes?.(router, wrap) ?? new Map<string, WriteHook>();
  router.post('/', wrap(batchOrTransaction(ctx, options.maxBodyBytes, hooks)));
  router.get('/', wrap(searchSystem(ctx)));
  router.post('/_search', wrap(searchSystem(ctx)));
  router.get('/_history', wrap(history(ctx, 'system')));
  // The type-level interactions (the busiest: create, search) ahead of the operations, none of which has a one-segment path.
  router.get('/:type', wrap(searchType(ctx)));
  router.post('/:type', wrap(hookedBody(ctx, hooks, create(ctx))));
  router.put('/:type', wrap(hookedBody(ctx, hooks, update(ctx))));
  router.patch('/:type', wrap(patch(ctx, hooks)));
  router.delete('/:type', wrap(remove(ctx)));
  router.post('/:type/$validate', wrap(validate(ctx)));
  router.post('/:type/:id/$validate', wrap(validate(ctx)));
  operationRoutes(router, ctx, wrap);
  router.post('/:type/_search', wrap(searchType(ctx)));
  router.get('/:type/_history', wrap(history(ctx, 'type')));
  router.get('/:type/:id', wrap(read(ctx)));
  router.put('/:type/:id', wrap(hookedBody(ctx, hooks, update(ctx))));
  router.patch('/:type/:id', wrap(patch(ctx, hooks)));
  router.delete('/:type/:id', wrap(remove(ctx)));
  router.get('/:type/:id/_history', wrap(history(ctx, 'instance')));
  router.get('/:type/:id/_history/:vid', wrap(vread(ctx)));
  router.all('/{*rest}', wrap(async () => {
    throw methodNotAllowed('This interaction is not supported');
  }));
  return router;
}

const criteria = (req: Request): string => new URL(req.originalUrl, 'http://x').search.slice(1);

/** A create or update handler, run on the body its type's write hook (if any) makes of the request's. */
const hookedBody = (ctx: FhirContext, hooks: WriteHooks, handler: Handler): Handler => async (req, res) => {
  const hook = hooks.get(req.params.type as string);
  if (hook) {
    const type = resourceType(req);
    const id = req.params.id as string | undefined;
    const target = req.method === 'POST' ? undefined : id ? { id } : { query: criteria(req) };
    const previous = async () => (target ? replacedVersion(ctx.repo.db, type, target, ctx.baseUrl) : undefined);
    req.body = await hook({ resource: bodyResource(req, type), previous, sql: ctx.repo.db, res });
  }
  await handler(req, res);
};

