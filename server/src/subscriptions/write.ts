import type { Subscription } from '@medplum/fhirtypes';
import type { AccessPolicy } from '../auth/access-policy.ts';
import { getSearchParams } from '../definitions.ts';
import { requestAccess } from '../fhir/access.ts';
import { FhirError, badRequest } from '../fhir/outcome.ts';
import type { WriteHook } from '../fhir/router.ts';
import type { Sql } from '../store/database.ts';
import { normalizeReference } from '../store/extract.ts';
import { Params } from '../store/search/conditions.ts';
import type { Restriction } from '../store/search/execute.ts';
import { splitValues } from '../store/search/query.ts';
import { withOwner } from './access.ts';
import { parseSubscription, type ParsedSubscription } from './parse.ts';

const CLIENT_STATUSES = new Set(['requested', 'active', 'off']);

/**
 * What a client's write of a Subscription stores, on every REST write path (the router's write
 * hook): a status a client may set, a subscription Vigil can serve (parse.ts, a 400 naming the
 * element), criteria naming only patients the writer may read, and the writer as its owner
 * (access.ts). Only the server makes a subscription `active` (R4): a client asking for `active` on
 * one not active already gets `requested`, activated as any (a topic-based rest-hook after its
 * handshake), so no endpoint is ever notified unchecked.
 */
export const subscriptionWrite = (baseUrl: string, allowPrivate: boolean): WriteHook => async ({ resource, previous, sql, res }) => {
  let sub = resource as Subscription;
  if (!CLIENT_STATUSES.has(sub.status)) throw badRequest(`Subscription.status must be requested, active or off, not "${sub.status}"`, 'Subscription.status');
  const parsed = parseSubscription(sub, allowPrivate);
  await checkNamedPatients(sql, baseUrl, parsed, requestAccess(res).restriction);
  if (sub.status === 'active' && ((await previous()) as Subscription | undefined)?.status !== 'active') sub = { ...sub, status: 'requested' };
  const policy = res.locals.access as AccessPolicy | undefined;
  return policy ? withOwner(sub, policy) : sub;
};

/**
 * A subscription may not name a patient its creator cannot read (`Observation?patient=Patient/other`):
 * refused with a 403 rather than left to match nothing. Criteria that name no patient are limited
 * to the creator's access when each change is matched.
 */
async function checkNamedPatients(sql: Sql, baseUrl: string, sub: ParsedSubscription, restriction: Restriction | undefined): Promise<void> {
  const named = new Set(sub.triggers.flatMap((t) => namedPatients(t.resourceType, t.search, baseUrl)));
  if (!restriction || named.size === 0) return;
  const params = new Params();
  const condition = restriction('t', 'Patient', params);
  if (condition === undefined) return;
  const rows = await sql.query<{ id: string }>(`SELECT t.id FROM "Patient" t WHERE t.id = ANY(${params.add([...named])}) AND ${condition}`, params.values);
  const outside = [...named].filter((id) => !rows.some((r) => r.id === id));
  if (outside.length) {
    throw new FhirError(403, [{
      severity: 'error', code: 'forbidden', expression: ['Subscription.criteria'],
      diagnostics: `The criteria name Patient/${outside[0]}, whose data this token may not read`,
    }]);
  }
}

/** Patient ids a search names outright: in reference parameters (`patient=Patient/1`, `subject=Patient/1`, `patient=1`) and a Patient's `_id`. */
function namedPatients(type: string, search: URLSearchParams, baseUrl: string): string[] {
  const ids: string[] = [];
  for (const [key, value] of search) {
    if (key.includes('.')) continue; // chains are limited when matched
    const [code, modifier] = key.split(':');
    const param = getSearchParams(type).get(code);
    const reference = param?.type === 'reference' && (modifier === undefined || modifier === 'Patient');
    for (const v of splitValues(value)) {
      if (type === 'Patient' && code === '_id') ids.push(v);
      if (!reference) continue;
      const ref = normalizeReference(v, baseUrl);
      const onlyPatients = modifier === 'Patient' || param.targets.every((t) => t === 'Patient');
      const m = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) ?? (onlyPatients ? /^([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null);
      if (m) ids.push(m[1]);
    }
  }
  return ids;
}
