import { ROUTES, CLIENT_AUTH_ALGS } from './provider.ts';

/**
 * SMART App Launch 2.x discovery (`/.well-known/smart-configuration`): absolute URLs, S256 only, and
 * `capabilities` listing exactly what this server does.
 */
export function smartConfiguration(issuer: string): Record<string, unknown> {
  const url = (path: string): string => `${issuer}${path}`;
  return {
    issuer,
    jwks_uri: url(ROUTES.jwks),
    authorization_endpoint: url(ROUTES.authorization),
    token_endpoint: url(ROUTES.token),
    introspection_endpoint: url(ROUTES.introspection),
    revocation_endpoint: url(ROUTES.revocation),
    userinfo_endpoint: url(ROUTES.userinfo),
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt', 'none'],
    token_endpoint_auth_signing_alg_values_supported: CLIENT_AUTH_ALGS,
    scopes_supported: [
      'openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access',
      'patient/*.rs', 'patient/*.read', 'user/*.cruds', 'user/*.*', 'system/*.cruds', 'system/*.*',
    ],
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: [
      'launch-ehr',
      'launch-standalone',
      'client-public',
      'client-confidential-symmetric',
      'client-confidential-asymmetric',
      'context-ehr-patient',
      'context-ehr-encounter',
      'context-standalone-patient',
      'context-passthrough-banner',
      'context-passthrough-style',
      'permission-offline',
      'permission-online',
      'permission-patient',
      'permission-user',
      'permission-v1',
      'permission-v2',
      'sso-openid-connect',
    ],
  };
}
