import type { NextFunction, Request, Response } from 'express';
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { FhirError } from '../fhir/outcome.ts';
import type { AccessPolicy } from './access-policy.ts';
import type { CareTeamPatients } from './care-team.ts';
import { publicJwk } from './keys.ts';
import { parseScopes } from './smart-scopes.ts';

/** RFC 6750 bearer-token errors as FHIR OperationOutcomes, with the WWW-Authenticate challenge. */
export class BearerError extends FhirError {
  readonly challenge: string;

  constructor(status: 401 | 403, error: string, description: string) {
    super(status, [{ severity: 'error', code: status === 401 ? 'login' : 'forbidden', diagnostics: description }]);
    this.challenge = `Bearer realm="vigil", error="${error}", error_description="${description.replace(/"/g, "'")}"`;
  }
}

interface AccessTokenClaims extends JWTPayload {
  client_id?: string;
  scope?: string;
  fhirUser?: string;
  patient?: string;
}

/** Verified tokens remembered at most; the oldest is forgotten first. */
const MAX_VERIFIED = 10_000;

export interface TokenVerifierOptions {
  issuer: string;
  /** The FHIR base URL: the only audience Vigil's access tokens carry. */
  audience: string;
  signingKeys: JWK[];
  careTeams: CareTeamPatients;
}

/**
 * Verifies JWT access tokens with jose against the server's own keys (held in memory, loaded from
 * the database at start) and turns their claims into an AccessPolicy. No database round trip,
 * except the cached care-team lookup for practitioners.
 */
export function tokenVerifier({ issuer, audience, signingKeys, careTeams }: TokenVerifierOptions) {
  const jwks = createLocalJWKSet({ keys: signingKeys.map(publicJwk) });
  // A client sends the same token on every request until it expires: its signature is checked once
  // (an RS256 verification costs more than a whole read) and its claims kept until `exp`.
  const verified = new Map<string, AccessTokenClaims>();
  const claimsOf = async (token: string): Promise<AccessTokenClaims> => {
    const hit = verified.get(token);
    if (hit && (hit.exp as number) * 1000 > Date.now()) return hit;
    verified.delete(token);
    const { payload } = await jwtVerify<AccessTokenClaims>(token, jwks, {
      issuer,
      audience,
      algorithms: ['RS256'],
      typ: 'at+jwt',
      requiredClaims: ['exp', 'iat', 'jti', 'client_id'],
    });
    if (verified.size >= MAX_VERIFIED) verified.delete(verified.keys().next().value as string);
    verified.set(token, payload);
    return payload;
  };
  return async function verify(authorization: string | undefined): Promise<AccessPolicy> {
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization ?? '');
    if (!match) throw new BearerError(401, 'invalid_request', 'A bearer access token is required');
    let claims: AccessTokenClaims;
    try {
      claims = await claimsOf(match[1]);
    } catch {
      // the reason stays in the server: no oracle for forgers
      throw new BearerError(401, 'invalid_token', 'The access token is invalid or expired');
    }
    const fhirUser = typeof claims.fhirUser === 'string' ? claims.fhirUser : undefined;
    const grants = parseScopes(claims.scope);
    let userPatients: string[] = [];
    if (fhirUser?.startsWith('Patient/')) userPatients = [fhirUser.slice('Patient/'.length)];
    else if (fhirUser?.startsWith('Practitioner/') && grants.some((g) => g.context === 'user')) userPatients = await careTeams.patientsOf(fhirUser);
    return {
      clientId: claims.client_id as string,
      sub: claims.sub ?? (claims.client_id as string),
      fhirUser,
      patient: typeof claims.patient === 'string' ? claims.patient : undefined,
      grants,
      userPatients,
    };
  };
}

export type TokenVerify = ReturnType<typeof tokenVerifier>;

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
