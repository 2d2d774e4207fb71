import type { NextFunction, Request, Response } from 'express';
import type { Resource } from '@medplum/fhirtypes';
import { isKnownResourceType } from '../definitions.ts';
import type { Interaction, InteractionCheck } from '../fhir/access.ts';
import { forbidden, notFound } from '../fhir/outcome.ts';
import { applyPatchBody, patchBody } from '../fhir/patch.ts';
import { quote } from '../store/columns.ts';
import type { Database, Sql } from '../store/database.ts';
import { extractIndex } from '../store/extract.ts';
import { Params } from '../store/search/conditions.ts';
import type { Restriction } from '../store/search/execute.ts';
import { ownedSubscriptions, SUBSCRIPTION_OPERATIONS } from '../subscriptions/access.ts';
import { type AccessPolicy, allows, allowsAll, isUnrestricted, readRestriction, requireWrite } from './access-policy.ts';
import type { Permission } from './smart-scopes.ts';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const ALL: Permission[] = ['c', 'r', 'u', 'd', 's'];
/** Operations that read through the caller's restriction, like search. */
const RESTRICTED_OPERATIONS = new Set(['$lastn', '$stats', '$timeseries', '$everything', '$evaluate-rule']);

/**
 * Access control for the FHIR REST API, per interaction of the spec's table, before the handler
 * runs: type-level scope checks, compartment checks on writes, and the existence check that turns a
 * forbidden read into a 404. Searches and includes are limited inside their SQL by the Restriction
 * this puts in `res.locals.restriction`; batch and transaction entries are checked one by one by
 * their handler with the same check, from `res.locals.checkInteraction`.
 */
export function fhirGuard(db: Database, baseUrl: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const policy = res.locals.access as AccessPolicy;
    const restriction = ownedSubscriptions(readRestriction(policy, baseUrl), policy);
    const check: InteractionCheck = (sql, interaction) => authorize(sql, policy, restriction, baseUrl, interaction);
    res.locals.restriction = restriction;
    res.locals.checkInteraction = check;
    check(db, {
      method: req.method === 'HEAD' ? 'GET' : req.method,
      path: req.path.split('/').filter(Boolean).map(decodeURIComponent),
      body: req.body,
      patch: () => patchBody(req.get('Content-Type'), req.body),
      ifNoneExist: Boolean(req.get('If-None-Exist')),
    }).then(() => next(), next);
  };
}

async function authorize(sql: Sql, policy: AccessPolicy, restriction: Restriction, baseUrl: string, i: Interaction): Promise<void> {
  const [type, second, third] = i.path;
  const { method } = i;
  if (type === undefined) return; // system search is restricted in SQL; batch/transaction: the handler checks each entry
  if (type === '_history') {
    if (!isUnrestricted(policy, ['r'])) throw forbidden('system history needs a system/*.read token');
    return;
  }
  if (!isKnownResourceType(type)) return; // the router answers 404
  if (type === 'AuditEvent' && (method === 'PUT' || method === 'PATCH' || method === 'DELETE')) {
    throw forbidden('AuditEvents are a record of what happened: they cannot be changed or deleted');
  }
  if (type === 'Subscription' && !isUnrestricted(policy, ALL) && !ownSubscriptionInteraction(i)) {
    // a user's subscriptions take the plainest routes: each written on its own, by id
    throw forbidden('A Subscription is written with POST /Subscription, PUT or DELETE /Subscription/{id}, each on its own');
  }
  const operation = [second, third].find((s) => s?.startsWith('$'));
  if (operation) {
    if (operation === '$validate') return; // reads no data
    // limited by their handlers to the caller's own subscriptions
    if (type === 'Subscription' && SUBSCRIPTION_OPERATIONS.has(operation) && allows(policy, type, 'r')) return;
    if (RESTRICTED_OPERATIONS.has(operation) && allows(policy, type, 'r')) {
      // these apply the token's restriction in SQL, as search does; an instance must itself be in reach
      if (third !== undefined && !(await visible(sql, restriction, type, second))) throw notFound(`${type}/${second} not found`);
      return;
    }
    if (!allowsAll(policy, type, 'r') || !isUnrestricted(policy, ['r'])) throw forbidden(`${operation} needs a system read scope`);
    return;
  }
  if (second === undefined || second === '_search') {
    if (method === 'GET' || (method === 'POST' && second === '_search')) return; // restricted in SQL
    if (method === 'POST') return checkCreate(policy, type, i, baseUrl);
    // conditional update/patch/delete search with criteria the restriction does not reach
    const permission: Permission = method === 'DELETE' ? 'd' : 'u';
    if (!allowsAll(policy, type, permission) || !allowsAll(policy, type, 's')) throw forbidden(`conditional ${method} needs a ${type} scope without compartment limits`);
    return;
  }
  if (second === '_history') {
    if (!allowsAll(policy, type, 'r')) throw forbidden(`type history needs read access to every ${type}`);
    return;
  }
  const id = second;
  if (method === 'GET') {
    if (!(await visible(sql, restriction, type, id))) throw notFound(`${type}/${id} not found`);
    return;
  }
  const current = await currentRow(sql, type, id, method === 'PATCH');
  if (method === 'DELETE') {
    if (current === undefined) return; // deleting what is absent is a no-op
    if (!(await visible(sql, restriction, type, id))) throw notFound(`${type}/${id} not found`);
    return requireWrite(policy, type, 'd', current.compartments);
  }
  if (method === 'PUT' || method === 'PATCH') {
    if (current !== undefined) {
      if (!(await visible(sql, restriction, type, id))) throw notFound(`${type}/${id} not found`);
      requireWrite(policy, type, 'u', current.compartments);
    } else if (method === 'PATCH') {
      return; // the handler answers 404
    }
    if (method === 'PUT') {
      const permission: Permission = current === undefined ? 'c' : 'u';
      requireWrite(policy, type, permission, compartmentsOf(policy, type, permission, i.body, baseUrl));
    } else if (current?.content && i.patch && !allowsAll(policy, type, 'u')) {
      // a patch may move the resource into another compartment, as a PUT may
      const patched = applyPatchBody(JSON.parse(current.content) as Resource, i.patch());
      requireWrite(policy, type, 'u', compartmentsOf(policy, type, 'u', patched, baseUrl));
    }
  }
}

/** The Subscription interactions a token with compartment limits may use. */
function ownSubscriptionInteraction({ method, path, entry }: Interaction): boolean {
  if (method === 'GET' || path[1] === '_search' || path.some((s) => s.startsWith('$'))) return true;
  if (entry) return false;
  return (method === 'POST' && path.length === 1) || ((method === 'PUT' || method === 'DELETE') && path.length === 2);
}

function checkCreate(policy: AccessPolicy, type: string, i: Interaction, baseUrl: string): void {
  if (!allows(policy, type, 'c')) throw forbidden(`This token may not create ${type}`);
  if (i.ifNoneExist && !allowsAll(policy, type, 's')) throw forbidden('conditional create needs a search scope without compartment limits');
  requireWrite(policy, type, 'c', compartmentsOf(policy, type, 'c', i.body, baseUrl));
}

/** The patient compartments a resource in a request body would belong to (only computed when they matter). */
function compartmentsOf(policy: AccessPolicy, type: string, permission: Permission, body: unknown, baseUrl: string): string[] {
  if (allowsAll(policy, type, permission)) return [];
  const resource = body as Resource | undefined;
  if (!resource || typeof resource !== 'object' || resource.resourceType !== type) return [];
  try {
    const row = extractIndex(resource.id ? resource : { ...resource, id: 'new' }, baseUrl);
    const compartments = (row.compartments as string[] | null) ?? [];
    // a new Patient is only in its own compartment once it has an id
    return type === 'Patient' && !resource.id ? [] : compartments;
  } catch {
    return []; // invalid bodies are refused by validation later, or here for want of a compartment
  }
}

/** The current row's compartments (and content, for patches), or undefined when there is no row (deleted rows count as present). */
async function currentRow(sql: Sql, type: string, id: string, withContent: boolean): Promise<{ compartments: string[]; content?: string | null } | undefined> {
  if (!ID.test(id)) return undefined;
  const rows = await sql.query<{ compartments: string[] | null; content?: string | null }>(`SELECT compartments${withContent ? ', content' : ''} FROM ${quote(type)} WHERE id = $1`, [id]);
  return rows[0] ? { compartments: rows[0].compartments ?? [], content: rows[0].content } : undefined;
}

/** Whether the resource exists within the token's reach (deleted ones too, so that they answer 410, not 404). */
export async function visible(sql: Sql, restriction: Restriction, type: string, id: string): Promise<boolean> {
  if (!ID.test(id)) return true; // the handler answers 404
  const params = new Params();
  const condition = restriction('t', type, params);
  if (condition === undefined) return true;
  // absent resources answer 404 anyway; existing-but-forbidden ones must look the same
  const rows = await sql.query(`SELECT 1 FROM ${quote(type)} t WHERE t.id = ${params.add(id)} AND ${condition}`, params.values);
  return rows.length > 0;
}
