export interface ClientCredentials {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  scope?: string;
}

/** Renewed this long before the server says a token expires, so no request carries an expired one. */
const RENEW_EARLY_MS = 30_000;

/**
 * The `Authorization` header for an OAuth 2 client_credentials grant (client_secret_basic, as SMART
 * Backend Services servers accept): one token at a time, shared by concurrent callers and renewed
 * before it expires.
 */
export function clientCredentialsAuthorization({ tokenUrl, clientId, clientSecret, scope }: ClientCredentials): () => Promise<string> {
  let current: { header: Promise<string>; until: number } | undefined;
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;
  async function fetchToken(): Promise<{ header: string; expiresIn: number }> {
    const res = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', authorization: basic },
      body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; token_type?: string; expires_in?: number; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) throw new Error(`client_credentials at ${tokenUrl} failed: ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim());
    return { header: `Bearer ${body.access_token}`, expiresIn: (body.expires_in ?? 300) * 1000 };
  }
  return () => {
    if (current && Date.now() < current.until) return current.header;
    const asked = fetchToken();
    const entry = { header: asked.then((t) => t.header), until: Infinity };
    asked.then(
      (t) => (entry.until = Date.now() + Math.max(0, t.expiresIn - RENEW_EARLY_MS)),
      () => (entry.until = 0), // a failure is not kept: the next call asks again
    );
    current = entry;
    return entry.header;
  };
}
