import { randomBytes } from 'node:crypto';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { badRequest, FhirError, forbidden } from '../fhir/outcome.ts';
import type { Database } from '../store/database.ts';
import { Params } from '../store/search/conditions.ts';
import { type AccessPolicy, readRestriction } from './access-policy.ts';
import { dbAdapter } from './adapter.ts';
import type { LaunchContext } from './launch-context.ts';

/** How long a launch id may wait for the app's authorization request. */
export const EHR_LAUNCH_TTL = 300;
const KIND = 'SmartEhrLaunch';
const ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** A launch the Vigil app created: who opened which patient (and encounter), for which app. */
interface EhrLaunch {
  user: string;
  patient: string;
  encounter?: string;
  client_id?: string;
}

/**
 * SMART EHR launch, Vigil's side: `POST /auth/launch` `{patient, encounter?, client_id?}` with the
 * signed-in clinician's token answers `{launch}`, an opaque id the app then opens the SMART app
 * with. Only for a patient (and an encounter of that patient) the token may read; the id lives
 * EHR_LAUNCH_TTL seconds and only the same user (and app, when named) can redeem it.
 */
export function ehrLaunchRouter(db: Database, baseUrl: string): Router {
  const router = Router();
  const clients = new (dbAdapter(db))('Client');
  const launches = new (dbAdapter(db))(KIND);
  router.post('/launch', express.json({ limit: '16kb', type: ['application/json', 'application/fhir+json'] }), (req: Request, res: Response, next: NextFunction) => {
    (async () => {
      const policy = res.locals.access as AccessPolicy;
      if (!policy.fhirUser) throw forbidden('An EHR launch is created by a signed-in user');
      const body = (req.body ?? {}) as Record<string, unknown>;
      const patient = reference(body.patient, 'Patient', 'patient');
      if (!patient) throw badRequest('patient is required (an id or Patient/<id>)', 'patient');
      const encounter = body.encounter === undefined ? undefined : reference(body.encounter, 'Encounter', 'encounter');
      const clientId = body.client_id;
      if (clientId !== undefined && (typeof clientId !== 'string' || !(await clients.find(clientId)))) throw badRequest('client_id names no registered app', 'client_id');
      if (!(await readable(db, policy, baseUrl, 'Patient', patient))) throw notVisible(`Patient/${patient}`, 'patient');
      if (encounter && !(await readable(db, policy, baseUrl, 'Encounter', encounter, patient))) throw notVisible(`Encounter/${encounter} of Patient/${patient}`, 'encounter');
      const launch = randomBytes(18).toString('base64url');
      const record: EhrLaunch = { user: policy.sub, patient, ...(encounter ? { encounter } : {}), ...(clientId ? { client_id: clientId } : {}) };
      await launches.upsert(launch, { ...record }, EHR_LAUNCH_TTL);
      res.status(201).set('Cache-Control', 'no-store').json({ launch });
    })().catch(next);
  });
  return router;
}

/** The context of launch `id` if `user` created it, for `clientId` or any app, and it has not expired. */
export async function resolveEhrLaunch(db: Database, id: string | undefined, user: string, clientId: string): Promise<LaunchContext | undefined> {
  if (!id) return undefined;
  const launch = (await new (dbAdapter(db))(KIND).find(id)) as EhrLaunch | undefined;
  if (!launch || launch.user !== user || (launch.client_id && launch.client_id !== clientId)) return undefined;
  return { patient: launch.patient, ...(launch.encounter ? { encounter: launch.encounter } : {}), need_patient_banner: false };
}

/** `123` or `Patient/123` → `123`; anything else is a 400 naming the field. */
function reference(value: unknown, type: string, path: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const id = typeof value === 'string' ? value.replace(new RegExp(`^${type}/`), '') : '';
  if (!ID.test(id)) throw badRequest(`${path} must be an id or ${type}/<id>`, path);
  return id;
}

/** Whether the token may read the resource (and, for an encounter, whether it is the patient's). */
async function readable(db: Database, policy: AccessPolicy, baseUrl: string, type: string, id: string, patient?: string): Promise<boolean> {
  const params = new Params();
  const conditions = [`t.id = ${params.add(id)}`, 'NOT t.deleted'];
  const restriction = readRestriction(policy, baseUrl)('t', type, params);
  if (restriction !== undefined) conditions.push(restriction);
  if (patient) conditions.push(`t.compartments @> ${params.add([`Patient/${patient}`])}::text[]`);
  const rows = await db.query(`SELECT 1 FROM "${type}" t WHERE ${conditions.join(' AND ')}`, params.values);
  return rows.length > 0;
}

/** Absent and forbidden look alike (no existence leak). */
function notVisible(what: string, path: string): FhirError {
  return new FhirError(404, [{ severity: 'error', code: 'not-found', diagnostics: `${what} not found`, expression: [path] }]);
}
