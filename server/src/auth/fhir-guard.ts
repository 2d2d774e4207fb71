import type { NextFunction, Request, Response } from 'express';
import type { Resource } from '@medplum/fhirtypes';
import { isKnownResourceType } from '../definitions.ts';
import { forbidden, notFound } from '../fhir/outcome.ts';
import { quote } from '../store/columns.ts';
import type { Database } from '../store/database.ts';
import { extractIndex } from '../store/extract.ts';
import { Params } from '../store/search/conditions.ts';
import { type AccessPolicy, allows, allowsAll, isUnrestricted, readRestriction, requireWrite } from './access-policy.ts';
import type { Permission } from './smart-scopes.ts';

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** Operations that read through the caller's restriction, like search. */
const RESTRICTED_OPERATIONS = new Set(['$lastn', '$stats', '$timeseries', '$everything']);

/**
 * Access control for the FHIR REST API, per interaction of the spec's table, before the handler
 * runs: type-level scope checks, compartment checks on writes, and the existence check that turns a
 * forbidden read into a 404. Searches and includes are limited inside their SQL by the Restriction
 * this puts in `res.locals.restriction`.
 */
export function fhirGuard(db: Database, baseUrl: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const policy = res.locals.access as AccessPolicy;
    res.locals.restriction = readRestriction(policy, baseUrl);
    guard(db, baseUrl, policy, req).then(() => next(), next);
  };
}

async function guard(db: Database, baseUrl: string, policy: AccessPolicy, req: Request): Promise<void> {
  const segments = req.path.split('/').filter(Boolean).map(decodeURIComponent);
  const [type, second, third] = segments;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (segments.length === 0) {
    // batch/transaction entries are not yet checked one by one: whole-system tokens only
    if (!isUnrestricted(policy, ['c', 'r', 'u', 'd', 's'])) throw forbidden('batch and transaction need a system/*.* token');
    return;
  }
  if (type === '_history') {
    if (!isUnrestricted(policy, ['r'])) throw forbidden('system history needs a system/*.read token');
    return;
  }
  if (!isKnownResourceType(type)) return; // the router answers 404
  const operation = [second, third].find((s) => s?.startsWith('$'));
  if (operation) {
    if (operation === '$validate') return; // reads no data
    if (RESTRICTED_OPERATIONS.has(operation) && allows(policy, type, 'r')) {
      // these apply the token's restriction in SQL, as search does; an instance must itself be in reach
      if (third !== undefined && !(await visible(db, policy, baseUrl, type, second))) throw notFound(`${type}/${second} not found`);
      return;
    }
    if (!allowsAll(policy, type, 'r') || !isUnrestricted(policy, ['r'])) throw forbidden(`${operation} needs a system read scope`);
    return;
  }
  if (second === undefined || second === '_search') {
    if (method === 'GET' || (method === 'POST' && second === '_search')) return; // restricted in SQL
    if (method === 'POST') return checkCreate(policy, type, req, baseUrl);
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
    if (!(await visible(db, policy, baseUrl, type, id))) throw notFound(`${type}/${id} not found`);
    return;
  }
  const exists = await currentCompartments(db, type, id);
  if (method === 'DELETE') {
    if (exists === undefined) return; // deleting what is absent is a no-op
    if (!(await visible(db, policy, baseUrl, type, id))) throw notFound(`${type}/${id} not found`);
    return requireWrite(policy, type, 'd', exists);
  }
  if (method === 'PUT' || method === 'PATCH') {
    if (exists !== undefined) {
      if (!(await visible(db, policy, baseUrl, type, id))) throw notFound(`${type}/${id} not found`);
      requireWrite(policy, type, 'u', exists);
    } else if (method === 'PATCH') {
      return; // the handler answers 404
    }
    if (method === 'PUT') {
      const permission: Permission = exists === undefined ? 'c' : 'u';
      requireWrite(policy, type, permission, compartmentsOf(policy, type, permission, req.body, baseUrl));
    }
  }
}

function checkCreate(policy: AccessPolicy, type: string, req: Request, baseUrl: string): void {
  if (!allows(policy, type, 'c')) throw forbidden(`This token may not create ${type}`);
  if (req.get('If-None-Exist') && !allowsAll(policy, type, 's')) throw forbidden('conditional create needs a search scope without compartment limits');
  requireWrite(policy, type, 'c', compartmentsOf(policy, type, 'c', req.body, baseUrl));
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

/** The current row's compartments, or undefined when there is no row (deleted rows count as present). */
async function currentCompartments(db: Database, type: string, id: string): Promise<string[] | undefined> {
  if (!ID.test(id)) return undefined;
  const rows = await db.query<{ compartments: string[] | null }>(`SELECT compartments FROM ${quote(type)} WHERE id = $1`, [id]);
  return rows[0] ? (rows[0].compartments ?? []) : undefined;
}

/** Whether the resource exists within the token's reach (deleted ones too, so that they answer 410, not 404). */
async function visible(db: Database, policy: AccessPolicy, baseUrl: string, type: string, id: string): Promise<boolean> {
  if (!ID.test(id)) return true; // the handler answers 404
  const params = new Params();
  const condition = readRestriction(policy, baseUrl)('t', type, params);
  if (condition === undefined) return true;
  const rows = await db.query(`SELECT 1 FROM ${quote(type)} t WHERE t.id = ${params.add(id)} AND ${condition}`, params.values);
  if (rows.length > 0) return true;
  // absent resources answer 404 anyway; existing-but-forbidden ones must look the same
  return false;
}
