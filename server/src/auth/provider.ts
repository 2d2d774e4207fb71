import Provider, { errors, type ClientLike, type KoaContextWithOIDC } from 'oidc-provider';
import type { Database } from '../store/database.ts';
import { introspectionAllowed, revocationAllowed } from './access-token-endpoints.ts';
import { dbAdapter } from './adapter.ts';
import type { KeyRing } from './keys.ts';
import { loadLaunchContext } from './launch-context.ts';
import { NON_RESOURCE_SCOPES, permittedScopes } from './smart-scopes.ts';
import type { UserStore } from './users.ts';

/** Where oidc-provider's endpoints live, relative to the issuer (the server's base URL). */
export const OAUTH_PREFIX = '/oauth2';
export const ROUTES = {
  authorization: `${OAUTH_PREFIX}/authorize`,
  token: `${OAUTH_PREFIX}/token`,
  jwks: `${OAUTH_PREFIX}/jwks`,
  introspection: `${OAUTH_PREFIX}/introspect`,
  revocation: `${OAUTH_PREFIX}/revoke`,
  userinfo: `${OAUTH_PREFIX}/userinfo`,
  end_session: `${OAUTH_PREFIX}/logout`,
  registration: `${OAUTH_PREFIX}/register`,
  pushed_authorization_request: `${OAUTH_PREFIX}/par`,
  backchannel_authentication: `${OAUTH_PREFIX}/backchannel`,
  code_verification: `${OAUTH_PREFIX}/device`,
  device_authorization: `${OAUTH_PREFIX}/device/auth`,
  challenge: `${OAUTH_PREFIX}/challenge`,
  credential: `${OAUTH_PREFIX}/credential`,
};

/** Token lifetimes (seconds). SMART backend services: ≤ 5 minutes; everything else ≤ 1 hour. */
export const BACKEND_TOKEN_TTL = 300;
export const USER_TOKEN_TTL = 3600;

export const CLIENT_AUTH_ALGS = ['RS256', 'RS384', 'PS384', 'ES256', 'ES384'];

export interface ProviderOptions {
  db: Database;
  issuer: string;
  fhirBase: string;
  keys: Pick<KeyRing, 'signing' | 'cookie'>;
  users: UserStore;
}

/**
 * oidc-provider configured for SMART App Launch 2 and SMART Backend Services. Each choice below
 * answers a rule of those specs; the library's own defaults are kept everywhere else.
 */
export function createProvider({ db, issuer, fhirBase, keys, users }: ProviderOptions): Provider {
  const statics = new Set<string>(NON_RESOURCE_SCOPES);
  const provider = new Provider(issuer, {
    adapter: dbAdapter(db),
    // newest first: the first RS256 key signs, every key stays published until retired
    jwks: { keys: [...keys.signing] },
    cookies: { keys: keys.cookie },
    routes: ROUTES,
    scopes: [...NON_RESOURCE_SCOPES],
    // SMART EHR launch: the opaque launch id the app received from Vigil
    extraParams: ['launch'],
    claims: { openid: ['sub'], fhirUser: ['fhirUser'], profile: ['name'] },
    // SMART wants fhirUser in the id_token itself, not only at userinfo
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    enabledJWA: { clientAuthSigningAlgValues: CLIENT_AUTH_ALGS, idTokenSigningAlgValues: ['RS256'] },
    clientDefaults: { grant_types: ['authorization_code'], response_types: ['code'], id_token_signed_response_alg: 'RS256', token_endpoint_auth_method: 'client_secret_basic' },
    extraClientMetadata: {
      properties: ['vigil_scopes'],
      validator(_ctx: unknown, key: string, value: unknown) {
        if (key === 'vigil_scopes' && value !== undefined && typeof value !== 'string') throw new errors.InvalidClientMetadata('vigil_scopes must be a string');
      },
    },
    // PKCE S256 for every client, confidential ones included (SMART 2, OAuth 2.1)
    pkce: { required: () => true },
    ttl: {
      AccessToken: USER_TOKEN_TTL,
      ClientCredentials: BACKEND_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: USER_TOKEN_TTL,
      RefreshToken: 30 * 24 * 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 30 * 24 * 3600,
    },
    async findAccount(_ctx: unknown, sub: string) {
      const user = await users.find(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: async () => ({ sub, fhirUser: `${fhirBase}/${user.fhirUser}` }) };
    },
    // The library issues refresh tokens for offline_access only; SMART also has online_access.
    async issueRefreshToken(_ctx: unknown, client: ClientLike, code: { scopes: Set<string> }) {
      return client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || code.scopes.has('online_access'));
    },
    // fhirUser and the launch context travel in the JWT access token, so the FHIR API needs no lookup.
    async extraTokenClaims(_ctx: KoaContextWithOIDC, token: { accountId?: string; grantId?: string; kind: string }) {
      if (!token.accountId) return undefined;
      const user = await users.find(token.accountId);
      const context = await loadLaunchContext(db, token.grantId);
      return {
        ...(user ? { fhirUser: user.fhirUser } : {}),
        ...(context?.patient ? { patient: context.patient } : {}),
        ...(context?.encounter ? { encounter: context.encounter } : {}),
        // revoking the grant (its refresh token) revokes the access tokens issued from it
        ...(token.grantId ? { grant_id: token.grantId } : {}),
      };
    },
    // A grant carries one launch context; an authorization asking for one gets a fresh grant (and
    // consent), so an earlier launch's patient is never reused.
    async loadExistingGrant(ctx: KoaContextWithOIDC) {
      const params = ctx.oidc.params ?? {};
      const scopes = String(params.scope ?? '').split(' ');
      const wantsContext = params.launch !== undefined || scopes.includes('launch') || scopes.includes('launch/patient');
      const grantId = ctx.oidc.result?.consent?.grantId ?? (wantsContext ? undefined : ctx.oidc.session?.grantIdFor(ctx.oidc.client?.clientId));
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `${OAUTH_PREFIX}/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // the same rules as for JWT access tokens (access-token-endpoints.ts)
      introspection: { enabled: true, allowedPolicy: async (_ctx: unknown, client: ClientLike, token: { clientId: string }) => introspectionAllowed(client, token.clientId) },
      revocation: { enabled: true, allowedPolicy: async (_ctx: unknown, client: ClientLike, token: { clientId: string }) => revocationAllowed(client, token.clientId) },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // SMART's `aud` is the FHIR base; it is the only resource and the default one.
        defaultResource: async () => fhirBase,
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx: KoaContextWithOIDC, indicator: string, client: ClientLike) {
          if (indicator !== fhirBase) throw new errors.InvalidTarget('the only resource is the FHIR base URL');
          const grantType = ctx.oidc.params?.grant_type as string | undefined;
          const requested = new Set<string>();
          for (const source of [ctx.oidc.params?.scope, ctx.oidc.entities.RefreshToken?.scope, ctx.oidc.entities.AuthorizationCode?.scope]) {
            if (typeof source === 'string') for (const s of source.split(' ')) if (s) requested.add(s);
          }
          const resourceScopes = permittedScopes([...requested], client.vigil_scopes as string | undefined);
          const context = grantType === 'client_credentials' ? [] : [...requested].filter((s) => statics.has(s));
          return {
            scope: [...context, ...resourceScopes].join(' '),
            audience: fhirBase,
            accessTokenFormat: 'jwt',
            accessTokenTTL: grantType === 'client_credentials' ? BACKEND_TOKEN_TTL : USER_TOKEN_TTL,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    async renderError(ctx: KoaContextWithOIDC, out: Record<string, string>) {
      ctx.set('Content-Type', 'text/html; charset=utf-8');
      ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Vigil sign-in error</title></head><body><main><h1>Sign-in error</h1><dl>${Object.entries(out)
        .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(String(v))}</dd>`)
        .join('')}</dl></main></body></html>`;
    },
  });
  return provider;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}
