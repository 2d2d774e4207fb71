/** What the simulator does: enrol patients and their devices (conditional creates), post readings. */
const SCOPE = 'system/Patient.crs system/Device.crs system/Observation.c';
/** Renew this long before the token expires. */
const MARGIN_MS = 30_000;

/** Extra request headers: a bearer token, or none against a server without authentication. */
export type AuthHeaders = () => Promise<Record<string, string>>;
export const anonymous: AuthHeaders = async () => ({});

export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
}

/** Authorization headers from the client-credentials grant (client_secret_basic), renewed before expiry. */
export function bearer(baseUrl: string, { clientId, clientSecret }: ClientCredentials): AuthHeaders {
  let current: { header: Record<string, string>; renewAt: number } | undefined;
  let pending: Promise<Record<string, string>> | undefined;
  const fetchToken = async () => {
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64');
    const res = await fetch(`${baseUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: SCOPE }),
    });
    const body = await res.json().catch(() => ({})) as { access_token?: string; expires_in?: number; error?: string; error_description?: string };
    if (!body.access_token) throw new Error(`No access token for client "${clientId}": ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim());
    current = { header: { authorization: `Bearer ${body.access_token}` }, renewAt: Date.now() + (body.expires_in ?? 300) * 1000 - MARGIN_MS };
    return current.header;
  };
  return () => {
    if (current && Date.now() < current.renewAt) return Promise.resolve(current.header);
    pending ??= fetchToken().finally(() => (pending = undefined));
    return pending;
  };
}
