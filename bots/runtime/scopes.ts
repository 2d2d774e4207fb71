import { allowsAll, type AccessPolicy } from '../../server/src/auth/access-policy.ts';
import { parseResourceScope, type Permission } from '../../server/src/auth/smart-scopes.ts';
import { forbidden } from '../../server/src/fhir/outcome.ts';
import type { Bot, FhirClient } from './manifest.ts';

/**
 * The client a bot's code gets: the host's, limited to the bot's declared scopes as Vigil's REST
 * layer limits a token with them (read `r`, search and `$lastn` `s`, create `c`, update `u`, a
 * conditional create `c` and `s`). Anything else fails with a 403, as any failed call fails a run.
 * Only `system/` scopes without a query are understood: a bot acts for the organisation, and a
 * granular scope could not be checked without reading what it guards.
 */
export function scopedClient(fhir: FhirClient, { name, scopes }: Pick<Bot, 'name' | 'scopes'>): FhirClient {
  const grants = scopes.map((scope) => {
    const grant = parseResourceScope(scope);
    if (grant?.context !== 'system' || grant.query) throw new Error(`bot ${name}: ${JSON.stringify(scope)} is not a SMART system scope without a query`);
    return grant;
  });
  const policy: AccessPolicy = { clientId: `bot:${name}`, sub: name, grants, userPatients: [] };
  const check = (type: string, ...permissions: Permission[]): void => {
    for (const p of permissions) if (!allowsAll(policy, type, p)) throw forbidden(`bot ${name} may not ${INTERACTION[p]} ${type}: its scopes are ${scopes.join(' ') || 'none'}`);
  };
  // async, so that a refusal is a rejected promise like any failed call (a `.catch` sees it)
  return {
    read: async (type, id) => (check(type, 'r'), fhir.read(type, id)),
    vread: async (type, id, versionId) => (check(type, 'r'), fhir.vread(type, id, versionId)),
    search: async (type, params) => (check(type, 's'), fhir.search(type, params)),
    async *searchPages(type, params) {
      check(type, 's');
      yield* fhir.searchPages(type, params);
    },
    lastn: async (params) => (check('Observation', 's'), fhir.lastn(params)),
    create: async (resource) => (check(resource.resourceType, 'c'), fhir.create(resource)),
    update: async (resource, options) => (check(resource.resourceType, 'u'), fhir.update(resource, options)),
    createIfNoneExist: async (resource, criteria) => (check(resource.resourceType, 'c', 's'), fhir.createIfNoneExist(resource, criteria)),
  };
}

const INTERACTION: Record<Permission, string> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };
