import type { Extension, Subscription } from '@medplum/fhirtypes';
import { type AccessPolicy, readRestriction, userPatients } from '../auth/access-policy.ts';
import type { CareTeamPatients } from '../auth/care-team.ts';
import { type Permission, parseScopes, type ResourceGrant } from '../auth/smart-scopes.ts';
import type { Params } from '../store/search/conditions.ts';
import type { Restriction } from '../store/search/execute.ts';

/**
 * Who may see what through a subscription. A subscription written through the REST API records
 * its owner (the user, else the client, with the token's scopes and launch patient) in a
 * server-set extension; its notifications are limited to what that owner may read, evaluated when
 * each change is matched, and only the owner (or a client that sees every subscription) can read
 * it, bind a websocket to it or page through its events. Subscriptions without an owner were
 * written by the server itself or by a token without limits, and are not limited.
 */

export const OWNER_EXT = 'https://vigil.health/fhir/StructureDefinition/subscription-owner';
/** Subscription operations that a token reaches for the caller's own subscriptions. */
export const SUBSCRIPTION_OPERATIONS: ReadonlySet<string> = new Set(['$status', '$events', '$resend', '$get-ws-binding-token']);

export interface Owner {
  /** `Patient/…` or `Practitioner/…`; absent for a client acting on its own. */
  user?: string;
  client: string;
  /** The SMART launch context's patient. */
  patient?: string;
  /** The token's resource scopes, as SMART v2 scopes. */
  scope: string;
}

/** The subscription as it is stored: the owner extension is the server's, whatever the client sent. */
export function withOwner(sub: Subscription, policy: AccessPolicy): Subscription {
  const parts: Extension[] = [
    ...(policy.fhirUser ? [{ url: 'user', valueReference: { reference: policy.fhirUser } }] : []),
    { url: 'client', valueString: policy.clientId },
    ...(policy.patient ? [{ url: 'patient', valueReference: { reference: `Patient/${policy.patient}` } }] : []),
    { url: 'scope', valueString: policy.grants.map(scopeText).join(' ') },
  ];
  return { ...sub, extension: [...(sub.extension ?? []).filter((e) => e.url !== OWNER_EXT), { url: OWNER_EXT, extension: parts }] };
}

export function ownerOf(sub: Subscription): Owner | undefined {
  const ext = sub.extension?.find((e) => e.url === OWNER_EXT);
  if (!ext) return undefined;
  const part = (url: string) => ext.extension?.find((e) => e.url === url);
  const patient = part('patient')?.valueReference?.reference;
  return {
    user: part('user')?.valueReference?.reference,
    client: part('client')?.valueString ?? '',
    patient: patient?.startsWith('Patient/') ? patient.slice('Patient/'.length) : undefined,
    scope: part('scope')?.valueString ?? '',
  };
}

const PERMISSIONS: Permission[] = ['c', 'r', 'u', 'd', 's'];
const scopeText = (g: ResourceGrant): string =>
  `${g.context}/${g.type}.${PERMISSIONS.filter((p) => g.permissions.has(p)).join('')}${g.query ? `?${g.query.toString()}` : ''}`;

/** A token that reads every subscription: a system scope on Subscription (or `*`) without a query. */
function seesAllSubscriptions(policy: AccessPolicy): boolean {
  return policy.grants.some((g) => g.context === 'system' && !g.query && (g.type === '*' || g.type === 'Subscription') && (g.permissions.has('r') || g.permissions.has('s')));
}

/** Whose subscriptions a websocket binding token binds: `*` (any) for a token that sees them all. */
export function ownerKey(policy: AccessPolicy): string {
  return seesAllSubscriptions(policy) ? '*' : (policy.fhirUser ?? `client:${policy.clientId}`);
}

export function subscriptionOwnerKey(sub: Subscription): string | undefined {
  const owner = ownerOf(sub);
  return owner && (owner.user ?? `client:${owner.client}`);
}

/** The read restriction plus, on Subscription, "owned by this user (or client)". */
export function ownedSubscriptions(restriction: Restriction, policy: AccessPolicy): Restriction {
  if (seesAllSubscriptions(policy)) return restriction;
  return (t, type, params) => {
    const base = restriction(t, type, params);
    if (type !== 'Subscription') return base;
    const owned = ownedSql(t, policy, params);
    return base === undefined ? owned : `(${base} AND ${owned})`;
  };
}

function ownedSql(t: string, policy: AccessPolicy, params: Params): string {
  // the owner extension is read from the JSON: the Subscription table is small and has no column for it
  const has = (parts: Extension[]): string => `(${t}.content::jsonb -> 'extension') @> ${params.add(JSON.stringify([{ url: OWNER_EXT, extension: parts }]))}::jsonb`;
  if (policy.fhirUser) return has([{ url: 'user', valueReference: { reference: policy.fhirUser } }]);
  return `(${has([{ url: 'client', valueString: policy.clientId }])} AND NOT ${has([{ url: 'user' }])})`;
}

/**
 * The owner's read restriction at match time (undefined: no limit). Care teams are looked up as
 * for a token, so a practitioner's subscription follows their care teams as they change.
 */
export async function ownerRestriction(owner: Owner | undefined, careTeams: CareTeamPatients, baseUrl: string): Promise<Restriction | undefined> {
  if (!owner) return undefined;
  const grants = parseScopes(owner.scope);
  const policy: AccessPolicy = {
    clientId: owner.client,
    sub: owner.user ?? owner.client,
    fhirUser: owner.user,
    patient: owner.patient,
    grants,
    userPatients: await userPatients(owner.user, grants, careTeams),
  };
  return readRestriction(policy, baseUrl);
}
