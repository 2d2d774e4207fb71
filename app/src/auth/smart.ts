/**
 * SMART App Launch 2 for the Vigil app: a public client using authorization code + PKCE (S256)
 * against Vigil's own authorization server, standalone or launched from an EHR (`iss` + `launch`).
 * Tokens live in sessionStorage: they end with the tab, and other tabs sign in on their own.
 */
export const CLIENT_ID = 'vigil-app';
const SCOPE = 'openid fhirUser offline_access user/*.cruds';
const PENDING = 'vigil.smart.pending';
const SESSION = 'vigil.smart.session';

export interface Session {
  accessToken: string;
  refreshToken?: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  /** `Practitioner/…` or `Patient/…`. */
  fhirUser: string;
  /** The patient in context (EHR launch, or a patient user's own record). */
  patient?: string;
  scope: string;
}

interface Pending { state: string; verifier: string; returnTo: string; launched: boolean }

interface SmartConfiguration { authorization_endpoint: string; token_endpoint: string }

interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  expires_in: number;
  scope: string;
  id_token?: string;
  patient?: string;
}

export const fhirBaseUrl = (): string => `${window.location.origin}/fhir/R4`;
const redirectUri = (): string => `${window.location.origin}/callback`;

let configuration: Promise<SmartConfiguration> | undefined;

function smartConfiguration(): Promise<SmartConfiguration> {
  configuration ??= fetch(`${fhirBaseUrl()}/.well-known/smart-configuration`).then(async (res) => {
    if (!res.ok) throw new Error(`SMART discovery failed (${res.status})`);
    return (await res.json()) as SmartConfiguration;
  });
  return configuration;
}

/** Sends the browser to the authorization server. `launch` comes from an EHR launch. */
export async function signIn(options: { returnTo?: string; launch?: string } = {}): Promise<void> {
  const { authorization_endpoint } = await smartConfiguration();
  const verifier = randomToken(48);
  const pending: Pending = { state: randomToken(24), verifier, returnTo: options.returnTo ?? '/', launched: !!options.launch };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const url = new URL(authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: redirectUri(),
    scope: options.launch ? `launch ${SCOPE}` : SCOPE,
    state: pending.state,
    aud: fhirBaseUrl(),
    code_challenge: await sha256Base64Url(verifier),
    code_challenge_method: 'S256',
    ...(options.launch ? { launch: options.launch } : {}),
  }).toString();
  window.location.assign(url.toString());
}

/** The redirect back: checks `state`, exchanges the code, stores the session; returns where to go. */
export async function completeSignIn(callback: URL): Promise<string> {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null') as Pending | null;
  sessionStorage.removeItem(PENDING);
  const error = callback.searchParams.get('error');
  if (error) throw new Error(callback.searchParams.get('error_description') ?? error);
  const code = callback.searchParams.get('code');
  if (!pending || !code || callback.searchParams.get('state') !== pending.state) {
    throw new Error('This sign-in response does not match a sign-in started here; please sign in again.');
  }
  const tokens = await tokenRequest({
    grant_type: 'authorization_code', code, redirect_uri: redirectUri(), client_id: CLIENT_ID, code_verifier: pending.verifier,
  });
  const session = toSession(tokens);
  storeSession(session);
  // an EHR launch opens the patient the EHR had in context
  if (pending.launched && session.patient) return `/patients/${encodeURIComponent(session.patient)}`;
  return pending.returnTo.startsWith('/') && !pending.returnTo.startsWith('//') ? pending.returnTo : '/';
}

/** A fresh access token from the refresh token (rotated by the server). */
export async function refreshSession(session: Session): Promise<Session> {
  if (!session.refreshToken) throw new Error('The session has ended; please sign in again.');
  const tokens = await tokenRequest({ grant_type: 'refresh_token', refresh_token: session.refreshToken, client_id: CLIENT_ID });
  const next = toSession(tokens, session);
  storeSession(next);
  return next;
}

export function loadSession(): Session | undefined {
  const session = JSON.parse(sessionStorage.getItem(SESSION) ?? 'null') as Session | null;
  return session && (session.expiresAt > Date.now() || session.refreshToken) ? session : undefined;
}

export function clearSession(): void {
  sessionStorage.removeItem(SESSION);
}

function storeSession(session: Session): void {
  sessionStorage.setItem(SESSION, JSON.stringify(session));
}

async function tokenRequest(body: Record<string, string>): Promise<TokenResponse> {
  const { token_endpoint } = await smartConfiguration();
  const res = await fetch(token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(body),
  });
  const json = (await res.json().catch(() => ({}))) as Partial<TokenResponse> & { error?: string; error_description?: string };
  if (!res.ok || !json.access_token) throw new Error(json.error_description ?? json.error ?? `Token request failed (${res.status})`);
  return json as TokenResponse;
}

function toSession(tokens: TokenResponse, previous?: Session): Session {
  const claims = decodeJwt(tokens.access_token);
  const fhirUser = String(claims.fhirUser ?? previous?.fhirUser ?? '').replace(/^.*\/((Practitioner|Patient|RelatedPerson|Person)\/[^/]+)$/, '$1');
  if (!fhirUser) throw new Error('This account is not linked to a practitioner or patient record.');
  const patient = tokens.patient ?? (fhirUser.startsWith('Patient/') ? fhirUser.slice('Patient/'.length) : previous?.patient);
  return {
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token ?? previous?.refreshToken,
    expiresAt: Date.now() + tokens.expires_in * 1000,
    fhirUser,
    ...(patient ? { patient } : {}),
    scope: tokens.scope,
  };
}

function decodeJwt(token: string): Record<string, unknown> {
  const payload = token.split('.')[1] ?? '';
  try {
    return JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function randomToken(bytes: number): string {
  return base64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function sha256Base64Url(text: string): Promise<string> {
  return base64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))));
}

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
