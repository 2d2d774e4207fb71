/**
 * SMART App Launch 2.x scopes, v1 (`patient/Observation.read`, `user/*.*`) and v2
 * (`patient/Observation.rs?category=vital-signs`), parsed once into grants.
 */
export type ScopeContext = 'patient' | 'user' | 'system';
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface ResourceGrant {
  context: ScopeContext;
  /** A resource type or `*`. */
  type: string;
  permissions: ReadonlySet<Permission>;
  /** v2 granular scope: search parameters the resources must also match. */
  query?: URLSearchParams;
}

/** Scopes that are not about resources: identity, launch context, refresh. */
export const NON_RESOURCE_SCOPES = ['openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'offline_access', 'online_access'] as const;

const ALL: Permission[] = ['c', 'r', 'u', 'd', 's'];
const V1: Record<string, Permission[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ALL };
const PATTERN = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)(?:\?(.+))?$/;

export function parseResourceScope(scope: string): ResourceGrant | undefined {
  const m = PATTERN.exec(scope);
  if (!m || !m[3]) return undefined;
  const [, context, type, perms, query] = m;
  const permissions = V1[perms] ?? [...perms];
  // v1 scopes never carry a query
  if (query !== undefined && V1[perms]) return undefined;
  return { context: context as ScopeContext, type, permissions: new Set(permissions as Permission[]), ...(query ? { query: new URLSearchParams(query) } : {}) };
}

export function parseScopes(scope: string | undefined): ResourceGrant[] {
  const grants: ResourceGrant[] = [];
  for (const s of scope?.split(' ') ?? []) {
    const g = parseResourceScope(s);
    if (g) grants.push(g);
  }
  return grants;
}

/** Whether a client registered for `allowed` may be granted `requested`: same context, a covering type, a subset of permissions. */
export function scopeAllowed(requested: ResourceGrant, allowed: ResourceGrant): boolean {
  if (requested.context !== allowed.context) return false;
  if (allowed.type !== '*' && allowed.type !== requested.type) return false;
  for (const p of requested.permissions) if (!allowed.permissions.has(p)) return false;
  if (allowed.query && allowed.query.toString() !== requested.query?.toString()) return false;
  return true;
}

/** The requested resource scopes that a client's registered scopes cover, in the requested spelling. */
export function permittedScopes(requested: string[], registered: string | undefined): string[] {
  const allowed = parseScopes(registered);
  return requested.filter((s) => {
    const g = parseResourceScope(s);
    return g !== undefined && allowed.some((a) => scopeAllowed(g, a));
  });
}
