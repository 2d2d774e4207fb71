import type { Database } from '../store/database.ts';
import { dbAdapter } from './adapter.ts';
import { parseResourceScope } from './smart-scopes.ts';

/** What an administrator registers; becomes OAuth client metadata (RFC 7591 names). */
export interface ClientRegistration {
  client_id: string;
  /** SMART resource scopes the client may be granted, space separated (e.g. `system/*.*`). */
  scopes: string;
  redirect_uris?: string[];
  /** Confidential symmetric client (client_secret_basic). */
  secret?: string;
  /** Confidential asymmetric client (private_key_jwt), keys inline or by URL. */
  jwks?: { keys: Record<string, unknown>[] };
  jwks_uri?: string;
  client_name?: string;
  launch_uri?: string;
}

const CLIENT_ID = /^[A-Za-z0-9\-._~:]{1,128}$/;

export function clientMetadata(r: ClientRegistration): Record<string, unknown> {
  if (!CLIENT_ID.test(r.client_id ?? '')) throw new Error('client_id must be 1 to 128 URL-safe characters');
  const scopes = (r.scopes ?? '').split(' ').filter(Boolean);
  const bad = scopes.find((s) => !parseResourceScope(s));
  if (bad) throw new Error(`"${bad}" is not a SMART resource scope`);
  const redirects = r.redirect_uris ?? [];
  const authMethod = r.jwks || r.jwks_uri ? 'private_key_jwt' : r.secret ? 'client_secret_basic' : 'none';
  if (authMethod === 'none' && redirects.length === 0) throw new Error('a public client needs redirect_uris');
  if (authMethod === 'client_secret_basic' && r.secret!.length < 16) throw new Error('a client secret must be at least 16 characters');
  const grantTypes: string[] = [];
  if (redirects.length) grantTypes.push('authorization_code', 'refresh_token');
  // backend services: confidential clients holding system scopes
  if (authMethod !== 'none' && scopes.some((s) => s.startsWith('system/'))) grantTypes.push('client_credentials');
  return {
    client_id: r.client_id,
    ...(r.client_name ? { client_name: r.client_name } : {}),
    token_endpoint_auth_method: authMethod,
    ...(authMethod === 'client_secret_basic' ? { client_secret: r.secret } : {}),
    ...(r.jwks ? { jwks: r.jwks } : {}),
    ...(r.jwks_uri ? { jwks_uri: r.jwks_uri } : {}),
    redirect_uris: redirects,
    grant_types: grantTypes,
    response_types: redirects.length ? ['code'] : [],
    vigil_scopes: scopes.join(' '),
  };
}

/** Clients are oidc-provider `Client` payloads in our database, found by its adapter. */
export async function putClient(db: Database, registration: ClientRegistration): Promise<Record<string, unknown>> {
  const metadata = clientMetadata(registration);
  const Adapter = dbAdapter(db);
  await new Adapter('Client').upsert(registration.client_id, metadata);
  return metadata;
}

/** Every registered client: id, how it authenticates, its scopes and redirect URIs (never a secret). */
export async function listClients(db: Database): Promise<{ client_id: string; auth: string; scopes: string; redirect_uris: string[] }[]> {
  const rows = await db.query<{ id: string; payload: Record<string, unknown> | string }>(`SELECT id, payload FROM oidc_payload WHERE kind = 'Client' ORDER BY id`);
  return rows.map(({ id, payload }) => {
    const m = (typeof payload === 'string' ? JSON.parse(payload) : payload) as Record<string, unknown>;
    return { client_id: id, auth: String(m.token_endpoint_auth_method), scopes: String(m.vigil_scopes ?? ''), redirect_uris: (m.redirect_uris as string[] | undefined) ?? [] };
  });
}
