import type { NextFunction, Request, Response } from 'express';
import { decodeJwt, jwtVerify } from 'jose';
import { FhirError } from '../fhir/outcome.ts';
import { type AccessPolicy, userPatients } from './access-policy.ts';
import type { CareTeamPatients } from './care-team.ts';
import type { KeyRing } from './keys.ts';
import type { RevocationList } from './revocation.ts';
import { parseScopes, type ResourceGrant } from './smart-scopes.ts';
import type { TrustedIssuers } from './trusted-issuers.ts';

/** RFC 6750 bearer-token errors as FHIR OperationOutcomes, with the WWW-Authenticate challenge. */
export class BearerError extends FhirError {
  readonly challenge: string;

  constructor(status: 401 | 403, error: string, description: string) {
    super(status, [{ severity: 'error', code: status === 401 ? 'login' : 'forbidden', diagnostics: description }]);
    this.challenge = `Bearer realm="vigil", error="${error}", error_description="${description.replace(/"/g, "'")}"`;
  }
}

/** What Vigil needs from any access token, whoever issued it. */
export interface TokenClaims {
  iss: string;
  jti?: string;
  exp: number;
  client_id: string;
  sub: string;
  scope?: string;
  /** `Practitioner/<id>`, `Patient/<id>`, … */
  fhirUser?: string;
  patient?: string;
  encounter?: string;
  /** The grant a Vigil user token came from (revoking the grant revokes the token). */
  grant_id?: string;
}

/** Verified tokens remembered at most; the oldest is forgotten first. */
const MAX_VERIFIED = 10_000;

export interface TokenVerifierOptions {
  issuer: string;
  /** The FHIR base URL: the only audience Vigil's access tokens carry. */
  audience: string;
  keys: KeyRing;
  revocations: RevocationList;
  trusted: TrustedIssuers;
  careTeams: CareTeamPatients;
}

interface Verified {
  claims: TokenClaims;
  grants: ResourceGrant[];
}

export type TokenVerify = (authorization: string | undefined) => Promise<AccessPolicy>;

/**
 * Verifies access tokens with jose — Vigil's own (RS256 `at+jwt`, by the key ring) and those of
 * trusted issuers — and turns their claims into an AccessPolicy. A client sends the same token on
 * every request until it expires, so its signature is checked once (an RS256 verification costs
 * more than a whole read) and its claims kept until `exp`; the revocation list is consulted on every
 * request, so a revoked token stops at once whatever the cache holds.
 */
export function tokenVerifier({ issuer, audience, keys, revocations, trusted, careTeams }: TokenVerifierOptions) {
  const verified = new Map<string, Verified>();

  async function signatureChecked(token: string): Promise<Verified> {
    const hit = verified.get(token);
    if (hit && hit.claims.exp * 1000 > Date.now()) return hit;
    verified.delete(token);
    const iss = decodeJwt(token).iss;
    let claims: TokenClaims;
    if (iss === issuer) {
      const { payload } = await jwtVerify(token, keys.verificationKey, { issuer, audience, algorithms: ['RS256'], typ: 'at+jwt', requiredClaims: ['exp', 'iat', 'jti', 'client_id'] });
      claims = { ...(payload as unknown as TokenClaims), sub: payload.sub ?? (payload.client_id as string) };
    } else if (trusted.has(iss)) {
      claims = await trusted.verify(token, iss as string);
    } else {
      throw new Error('unknown issuer');
    }
    const entry = { claims, grants: parseScopes(claims.scope) };
    if (verified.size >= MAX_VERIFIED) verified.delete(verified.keys().next().value as string);
    verified.set(token, entry);
    return entry;
  }

  async function check(token: string): Promise<Verified> {
    const entry = await signatureChecked(token);
    if (revocations.has(entry.claims.jti) || revocations.has(entry.claims.grant_id)) throw new Error('revoked');
    return entry;
  }

  /** A token's claims if it is valid now (signature, issuer, audience, expiry, not revoked); throws otherwise. */
  const claims = async (token: string): Promise<TokenClaims> => (await check(token)).claims;

  const verify: TokenVerify = async (authorization) => {
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization ?? '');
    if (!match) throw new BearerError(401, 'invalid_request', 'A bearer access token is required');
    let entry: Verified;
    try {
      entry = await check(match[1]);
    } catch {
      // the reason stays in the server: no oracle for forgers
      throw new BearerError(401, 'invalid_token', 'The access token is invalid, expired or revoked');
    }
    const { claims: c, grants } = entry;
    const fhirUser = typeof c.fhirUser === 'string' ? c.fhirUser : undefined;
    return {
      clientId: c.client_id,
      sub: c.sub,
      fhirUser,
      patient: typeof c.patient === 'string' ? c.patient : undefined,
      grants,
      userPatients: await userPatients(fhirUser, grants, careTeams),
    };
  };

  return { verify, claims };
}

/** Express middleware: a valid token or a 401; the policy lands in `res.locals.access`. */
export function requireToken(verify: TokenVerify) {
  return (req: Request, res: Response, next: NextFunction): void => {
    verify(req.get('Authorization')).then(
      (policy) => {
        res.locals.access = policy;
        next();
      },
      (err: unknown) => {
        if (err instanceof BearerError) res.setHeader('WWW-Authenticate', err.challenge);
        next(err);
      },
    );
  };
}
