import { createHash, timingSafeEqual } from 'node:crypto';
import { allows, type AccessPolicy } from '../auth/access-policy.ts';
import { dbAdapter } from '../auth/adapter.ts';
import type { TokenVerify } from '../auth/bearer.ts';
import { parseScopes } from '../auth/smart-scopes.ts';
import type { Database } from '../store/database.ts';

/**
 * A connected device: `policy()` answers what it may write now, and rejects once its credentials
 * have expired (an access token outlived by its connection).
 */
export interface DeviceIdentity {
  clientId: string;
  policy(): Promise<AccessPolicy>;
}

/** Checks an MQTT CONNECT's credentials; undefined refuses the connection. */
export type Authenticate = (username: string, password: string) => Promise<DeviceIdentity | undefined>;

interface ClientPayload {
  client_secret?: string;
  token_endpoint_auth_method?: string;
  vigil_scopes?: string;
}

/**
 * Vigil's OAuth clients as MQTT credentials: username = client id and password = its secret (the
 * client acts with its registered system scopes, as with client_credentials), or any username and
 * password = an access token, verified like a bearer token on every publish. Either way the
 * device must be allowed to create Observations, or it has no business on the broker.
 */
export function oauthDevices(db: Database, verify: TokenVerify): Authenticate {
  const clients = new (dbAdapter(db))('Client');
  return async (username, password) => {
    if (!password) return undefined;
    const client = username ? ((await clients.find(username)) as ClientPayload | undefined) : undefined;
    let identity: DeviceIdentity | undefined;
    if (client?.token_endpoint_auth_method === 'client_secret_basic' && client.client_secret && sameSecret(client.client_secret, password)) {
      const policy: AccessPolicy = {
        clientId: username,
        sub: username,
        grants: parseScopes(client.vigil_scopes).filter((g) => g.context === 'system'),
        userPatients: [],
      };
      identity = { clientId: username, policy: async () => policy };
    } else {
      const bearer = `Bearer ${password}`;
      const policy = await verify(bearer).catch(() => undefined);
      if (policy) identity = { clientId: policy.clientId, policy: () => verify(bearer) };
    }
    if (!identity || !allows(await identity.policy(), 'Observation', 'c')) return undefined;
    return identity;
  };
}

/** Constant-time, whatever the lengths. */
function sameSecret(expected: string, given: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(expected), digest(given));
}
