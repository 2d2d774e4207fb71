import { decodeJwt, decodeProtectedHeader } from 'jose';
import { errors, type ClientLike, type KoaContextWithOIDC } from 'oidc-provider';
import type { RevocationList } from './revocation.ts';
import type { TokenClaims } from './bearer.ts';

/** The claims an introspection answer repeats from a Vigil access token (RFC 7662 names, then SMART's). */
const INTROSPECTED = ['iss', 'sub', 'aud', 'client_id', 'scope', 'exp', 'iat', 'jti', 'fhirUser', 'patient', 'encounter'];

export interface AccessTokenEndpointOptions {
  issuer: string;
  /** The bearer verifier's check: claims of a currently valid token, or a throw. */
  claims(token: string): Promise<TokenClaims>;
  revocations: RevocationList;
}

/** Who may introspect a token: the client it was issued to, or any confidential client (a resource server asking). */
export function introspectionAllowed(client: ClientLike, tokenClientId: string): boolean {
  return tokenClientId === client.clientId || client.clientAuthMethod !== 'none';
}

/** Only the client a token was issued to may revoke it; another public client is ignored, a confidential one told so. */
export function revocationAllowed(client: ClientLike, tokenClientId: string): boolean {
  if (tokenClientId === client.clientId) return true;
  if (client.clientAuthMethod === 'none') return false;
  throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
}

/**
 * Introspection (RFC 7662) and revocation (RFC 7009) of Vigil's JWT access tokens. oidc-provider
 * answers both for the tokens it stores (refresh tokens) but refuses structured tokens with
 * `unsupported_token_type` — after authenticating the client. This runs after it and, for a JWT,
 * gives the real answer: introspection says whether the token is valid now (signature, expiry,
 * revocation list) and what it carries; revocation puts its `jti` on the revocation list. Who may
 * ask is decided as for the library's tokens (introspectionAllowed, revocationAllowed).
 */
export function accessTokenEndpoints({ issuer, claims, revocations }: AccessTokenEndpointOptions) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    await next();
    const route = ctx.oidc?.route;
    if (route !== 'introspection' && route !== 'revocation') return;
    const client = ctx.oidc.client;
    const token = ctx.oidc.params?.token;
    if (ctx.status !== 400 || !client || typeof token !== 'string' || !isJwt(token)) return;
    const valid = await claims(token).then((c) => (c.iss === issuer ? c : undefined), () => undefined);
    if (route === 'introspection') {
      ctx.status = 200;
      if (!valid || !introspectionAllowed(client, valid.client_id)) return void (ctx.body = { active: false });
      const payload = decodeJwt(token) as Record<string, unknown>;
      ctx.body = { active: true, token_type: 'Bearer', ...Object.fromEntries(INTROSPECTED.filter((k) => payload[k] !== undefined).map((k) => [k, payload[k]])) };
      return;
    }
    let allowed = false;
    try {
      allowed = valid !== undefined && revocationAllowed(client, valid.client_id);
    } catch (err) {
      const { message, error_description } = err as Error & { error_description?: string };
      return void (ctx.body = { error: message, error_description });
    }
    // an invalid or expired token is answered like a revoked one (RFC 7009 §2.2)
    if (allowed && valid?.jti) await revocations.revoke(valid.jti, valid.exp);
    ctx.status = 200;
    ctx.body = '';
  };
}

function isJwt(token: string): boolean {
  try {
    return Boolean(decodeProtectedHeader(token));
  } catch {
    return false;
  }
}
