import type { Request, Response } from 'express';
import type { OperationOutcomeIssue, Parameters, Resource } from '@medplum/fhirtypes';
import { getProfile } from '../../profiles.ts';
import { validationIssues } from '../../store/validation.ts';
import { type FhirContext, resourceType, searchParams } from '../context.ts';
import { FhirError, badRequest } from '../outcome.ts';
import { sendJson } from '../respond.ts';
import { checkKnown, single } from './parameters.ts';

const MODES = new Set(['create', 'update', 'delete']);
const PARAMS = new Set(['resource', 'mode', 'profile']);

interface Input {
  resource?: Resource;
  mode?: string;
  profile?: string;
}

/**
 * $validate: `POST [base]/[type]/$validate` and `POST [base]/[type]/[id]/$validate`. The body is
 * the resource, or a Parameters with `resource`, `mode` and `profile` (which may also be given in
 * the URL). The answer is always 200 with an OperationOutcome: what is wrong with the resource is
 * the operation's result, not a failed request. Invalid requests (unknown mode or profile, no
 * resource) are 400s.
 */
export const validate = (ctx: FhirContext) => async (req: Request, res: Response): Promise<void> => {
  const type = resourceType(req);
  const id = req.params.id as string | undefined;
  const { resource, mode, profile } = input(req, type);
  if (mode !== undefined && !MODES.has(mode)) throw badRequest(`mode must be create, update or delete, not "${mode}"`, 'mode');
  if (profile !== undefined && !getProfile(profile)) throw badRequest(`Unknown profile ${profile}`, 'profile');
  if (mode === 'create' && id) throw badRequest('mode create validates a new resource: use POST [base]/[type]/$validate', 'mode');

  let issues: OperationOutcomeIssue[];
  if (mode === 'delete') {
    const target = id ?? resource?.id;
    if (!target) throw badRequest('mode delete needs the id of the resource: use POST [base]/[type]/[id]/$validate', 'mode');
    issues = await existence(ctx, type, target);
  } else {
    if (!resource) throw badRequest('No resource to validate: send it as the body or as the "resource" parameter', 'resource');
    if (resource.resourceType !== type) throw badRequest(`resourceType "${resource.resourceType}" does not match the URL's "${type}"`, 'resourceType');
    const profiles = [...(resource.meta?.profile ?? []), ...(profile ? [profile] : [])];
    const found = validationIssues(resource, profiles);
    issues = [...idIssues(resource, id, mode), ...found.base, ...found.profile];
  }
  const valid = !issues.some((i) => i.severity === 'error' || i.severity === 'fatal');
  const all: OperationOutcomeIssue[] = valid ? [{ severity: 'information', code: 'informational', diagnostics: 'All OK' }, ...issues] : issues;
  sendJson(req, res, 200, { resourceType: 'OperationOutcome', issue: all });
};

/** The operation's parameters from the body (resource or Parameters) and the URL. */
function input(req: Request, type: string): Input {
  const params = searchParams(req);
  const body = req.body as Resource | undefined;
  let resource: Resource | undefined;
  if (body && typeof body === 'object' && !Array.isArray(body) && typeof body.resourceType === 'string') {
    // A Parameters body is the operation's input, unless a Parameters resource is what is validated.
    const isInput = body.resourceType === 'Parameters' && (type !== 'Parameters' || body.parameter?.some((p) => p.name === 'resource'));
    resource = isInput ? parametersInput(body as Parameters, params) : body;
  } else if (body !== undefined) {
    throw badRequest('The body must be a FHIR resource or a Parameters resource in JSON');
  }
  checkKnown(params, PARAMS);
  return { resource, mode: single(params, 'mode'), profile: single(params, 'profile') };
}

function parametersInput(body: Parameters, params: URLSearchParams): Resource | undefined {
  let resource: Resource | undefined;
  for (const [i, p] of (body.parameter ?? []).entries()) {
    const where = `Parameters.parameter[${i}]`;
    if (p.name === 'resource') {
      if (resource || !p.resource) throw badRequest('"resource" must be given once, as a resource', where);
      resource = p.resource;
    } else {
      const value = p.valueCode ?? p.valueUri ?? p.valueCanonical ?? p.valueString;
      if (value === undefined) throw badRequest(`Parameter "${p.name}" must have a code, uri, canonical or string value`, where);
      params.append(p.name ?? '', value);
    }
  }
  return resource;
}

/** An instance-level call validates that instance; an update needs to know which. */
function idIssues(resource: Resource, id: string | undefined, mode: string | undefined): OperationOutcomeIssue[] {
  const at = [`${resource.resourceType}.id`];
  if (id && resource.id !== undefined && resource.id !== id) {
    return [{ severity: 'error', code: 'invalid', diagnostics: `Resource id "${resource.id}" does not match the URL's "${id}"`, expression: at }];
  }
  if (mode === 'update' && !id && !resource.id) {
    return [{ severity: 'error', code: 'required', diagnostics: 'An update needs the resource id', expression: at }];
  }
  return [];
}

/** A delete needs something to delete: an absent or already deleted resource is an error issue. */
async function existence(ctx: FhirContext, type: string, id: string): Promise<OperationOutcomeIssue[]> {
  try {
    await ctx.repo.readVersion(type, id);
    return [];
  } catch (err) {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) {
      return (err.outcome.issue ?? []).map((i) => ({ ...i, expression: [`${type}.id`] }));
    }
    throw err;
  }
}
