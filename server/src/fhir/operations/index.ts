import type { Request, RequestHandler, Response, Router } from 'express';
import type { FhirContext } from '../context.ts';
import { evaluateRule } from './evaluate-rule.ts';
import { everything } from './everything.ts';
import { lastn } from './lastn.ts';
import { stats } from './stats.ts';
import { timeseries } from './timeseries.ts';

type Wrap = (handler: (req: Request, res: Response) => Promise<void>) => RequestHandler;

/** `$` may arrive percent-encoded; Express matches the raw path. */
const paths = (path: string): string[] => [path, path.replace('$', '%24')];

/**
 * The monitoring operations, GET (query parameters) and POST (a Parameters body). Register before
 * the generic `/:type/:id` routes, which would otherwise take `$lastn` for an id.
 */
export function operationRoutes(router: Router, ctx: FhirContext, wrap: Wrap): void {
  const routes: [string, (req: Request, res: Response) => Promise<void>][] = [
    ['/Observation/$lastn', lastn(ctx)],
    ['/Observation/$stats', stats(ctx)],
    ['/Observation/$timeseries', timeseries(ctx)],
    ['/Patient/$everything', everything(ctx, 'type')],
    ['/Patient/:id/$everything', everything(ctx, 'instance')],
    ['/PlanDefinition/$evaluate-rule', evaluateRule(ctx)],
  ];
  for (const [route, handler] of routes) {
    for (const path of paths(route)) {
      router.get(path, wrap(handler));
      router.post(path, wrap(handler));
    }
  }
}
