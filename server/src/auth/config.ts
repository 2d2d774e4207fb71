/** Authorization settings, from the environment (see README, "Configuration" and "Security"). */
export interface AuthConfig {
  /** Age at which the signing key is replaced; older keys keep verifying until their tokens expire. */
  keyRotationDays: number;
  /** Other OIDC issuers whose access tokens the FHIR API accepts. */
  trustedIssuers: TrustedIssuer[];
  /** Browser origins (other than Vigil's own) allowed to call the API cross-origin. */
  corsOrigins: string[];
  /** Requests per minute per client IP; 0 turns a limit off. */
  rateLimits: { token: number; login: number };
}

export interface TrustedIssuer {
  issuer: string;
  /** Where its signing keys are; when absent, read from the issuer's OpenID discovery document. */
  jwks_uri?: string;
  /** The `aud` its tokens must carry for Vigil. */
  audience: string;
  /** The claim holding the user's FHIR resource (`Practitioner/123`, or an absolute URL ending so). */
  fhir_user_claim: string;
  /** The claim holding the SMART scopes (a space-separated string or an array). */
  scope_claim: string;
}

export function loadAuthConfig(env: NodeJS.ProcessEnv): AuthConfig {
  return {
    keyRotationDays: positiveNumber(env.VIGIL_KEY_ROTATION_DAYS, 30, 'VIGIL_KEY_ROTATION_DAYS'),
    trustedIssuers: parseTrustedIssuers(env.VIGIL_TRUSTED_ISSUERS),
    corsOrigins: (env.VIGIL_CORS_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean).map((o) => origin(o, 'VIGIL_CORS_ORIGINS')),
    rateLimits: {
      token: count(env.VIGIL_RATE_LIMIT_TOKEN, 600, 'VIGIL_RATE_LIMIT_TOKEN'),
      login: count(env.VIGIL_RATE_LIMIT_LOGIN, 30, 'VIGIL_RATE_LIMIT_LOGIN'),
    },
  };
}

/** `VIGIL_TRUSTED_ISSUERS`: a JSON array of issuers, checked here so that a typo stops start-up, not a request. */
export function parseTrustedIssuers(json: string | undefined): TrustedIssuer[] {
  if (!json?.trim()) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error('VIGIL_TRUSTED_ISSUERS must be a JSON array of {issuer, audience, jwks_uri?, fhir_user_claim?, scope_claim?}');
  }
  if (!Array.isArray(raw)) throw new Error('VIGIL_TRUSTED_ISSUERS must be a JSON array');
  return raw.map((entry: Record<string, unknown>, i) => {
    const at = `VIGIL_TRUSTED_ISSUERS[${i}]`;
    const text = (key: string, fallback?: string): string => {
      const value = entry?.[key] ?? fallback;
      if (typeof value !== 'string' || !value) throw new Error(`${at}.${key} must be a non-empty string`);
      return value;
    };
    const issuer = text('issuer');
    url(issuer, `${at}.issuer`);
    const jwksUri = entry.jwks_uri === undefined ? undefined : text('jwks_uri');
    if (jwksUri) url(jwksUri, `${at}.jwks_uri`);
    return { issuer, ...(jwksUri ? { jwks_uri: jwksUri } : {}), audience: text('audience'), fhir_user_claim: text('fhir_user_claim', 'fhirUser'), scope_claim: text('scope_claim', 'scope') };
  });
}

function url(value: string, name: string): URL {
  const parsed = URL.parse(value);
  if (!parsed || !/^https?:$/.test(parsed.protocol)) throw new Error(`${name} must be an http(s) URL, not "${value}"`);
  return parsed;
}

function origin(value: string, name: string): string {
  const parsed = url(value, name);
  if (parsed.origin !== value.replace(/\/+$/, '')) throw new Error(`${name}: "${value}" is not an origin (scheme://host[:port])`);
  return parsed.origin;
}

function positiveNumber(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not "${value}"`);
  return n;
}

function count(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, not "${value}"`);
  return n;
}
