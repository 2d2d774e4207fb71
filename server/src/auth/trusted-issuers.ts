import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { TokenClaims } from './bearer.ts';
import type { TrustedIssuer } from './config.ts';

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const FHIR_USER = /^(Practitioner|Patient|RelatedPerson|Person)\/[A-Za-z0-9\-.]{1,64}$/;

/**
 * Access tokens from other OIDC issuers (`VIGIL_TRUSTED_ISSUERS`, e.g. an organisation's Keycloak):
 * signature by the issuer's published keys (fetched lazily, re-fetched for an unknown kid by jose),
 * issuer and audience checked, and the configured claims mapped onto Vigil's: `fhirUser` and
 * `scope`. A Patient user's token is in that patient's context.
 */
export class TrustedIssuers {
  readonly #issuers = new Map<string, { config: TrustedIssuer; keys?: Promise<JWTVerifyGetKey> }>();
  readonly #fhirBase: string;

  constructor(issuers: TrustedIssuer[], fhirBase: string) {
    for (const config of issuers) this.#issuers.set(config.issuer, { config });
    this.#fhirBase = fhirBase;
  }

  has(issuer: string | undefined): boolean {
    return issuer !== undefined && this.#issuers.has(issuer);
  }

  async verify(token: string, issuer: string): Promise<TokenClaims> {
    const entry = this.#issuers.get(issuer);
    if (!entry) throw new Error('untrusted issuer');
    const { config } = entry;
    entry.keys ??= this.#keys(config).catch((err: unknown) => {
      entry.keys = undefined; // an issuer that was down is asked again next time
      throw err;
    });
    const { payload } = await jwtVerify(token, await entry.keys, { issuer, audience: config.audience, algorithms: ASYMMETRIC, requiredClaims: ['exp', 'sub'] });
    const fhirUser = this.#fhirUser(payload[config.fhir_user_claim]);
    const scopes = payload[config.scope_claim];
    const scope = Array.isArray(scopes) ? scopes.filter((s) => typeof s === 'string').join(' ') : typeof scopes === 'string' ? scopes : undefined;
    return {
      iss: issuer,
      jti: payload.jti,
      exp: payload.exp as number,
      client_id: text(payload, 'client_id') ?? text(payload, 'azp') ?? issuer,
      sub: payload.sub as string,
      scope,
      fhirUser,
      patient: fhirUser?.startsWith('Patient/') ? fhirUser.slice('Patient/'.length) : undefined,
    };
  }

  async #keys(config: TrustedIssuer): Promise<JWTVerifyGetKey> {
    let jwksUri = config.jwks_uri;
    if (!jwksUri) {
      const res = await fetch(`${config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`discovery of ${config.issuer} answered ${res.status}`);
      const discovery = (await res.json()) as { issuer?: string; jwks_uri?: string };
      if (discovery.issuer !== config.issuer || typeof discovery.jwks_uri !== 'string') throw new Error(`discovery of ${config.issuer} names another issuer or no jwks_uri`);
      jwksUri = discovery.jwks_uri;
    }
    return createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: 5_000 });
  }

  /** `Practitioner/123`, or an absolute URL of a resource on this server's FHIR base. */
  #fhirUser(value: unknown): string | undefined {
    if (typeof value !== 'string') return undefined;
    const relative = value.startsWith(`${this.#fhirBase}/`) ? value.slice(this.#fhirBase.length + 1) : value;
    return FHIR_USER.test(relative) ? relative : undefined;
  }
}

function text(payload: JWTPayload, claim: string): string | undefined {
  const value = payload[claim];
  return typeof value === 'string' && value ? value : undefined;
}
