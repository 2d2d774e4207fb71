import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

/** A browser's part of the authorization code flow: a cookie jar and manual redirects. */
export class Browser {
  readonly cookies = new Map<string, string>();

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const value = pair.slice(i + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) this.cookies.delete(pair.slice(0, i));
      else this.cookies.set(pair.slice(0, i), value);
    }
    return res;
  }

  /** Follows redirects until leaving `origin` (the app's redirect_uri) or reaching a page. */
  async follow(url: string, origin: string): Promise<{ url: string; res: Response }> {
    let current = url;
    for (let i = 0; i < 10; i++) {
      if (!current.startsWith(origin)) return { url: current, res: undefined as unknown as Response };
      const res = await this.fetch(current);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return { url: current, res };
      current = new URL(location, current).href;
    }
    throw new Error('too many redirects');
  }

  async submit(pageUrl: string, html: string, action: RegExp, fields: Record<string, string>, origin: string): Promise<{ url: string; res: Response }> {
    const m = new RegExp(`action="([^"]*${action.source}[^"]*)"`).exec(html);
    assert.ok(m, `no form matching ${action} in ${html.slice(0, 300)}`);
    const res = await this.fetch(new URL(m[1], pageUrl).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) return this.follow(new URL(location, pageUrl).href, origin);
    return { url: pageUrl, res };
  }
}

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export interface CodeFlow {
  base: string;
  fhir: string;
  clientId: string;
  redirectUri: string;
  scope: string;
  username: string;
  password: string;
  /** For practitioners: the patient to pick. */
  patient?: string;
  /** EHR launch: the launch id Vigil gave the app. */
  launch?: string;
}

/**
 * A user at Vigil's pages, from an authorization URL: the login form (unless the browser is signed
 * in), then consent (and the patient picker), until Vigil redirects back to the app; returns where.
 */
export async function signIn(browser: Browser, authorizeUrl: string, f: Pick<CodeFlow, 'base' | 'username' | 'password' | 'patient'>): Promise<string> {
  let step = await browser.follow(authorizeUrl, f.base);
  for (let pages = 0; step.url.startsWith(f.base); pages++) {
    assert.ok(pages < 3, `stuck at ${step.url}`);
    assert.equal(step.res.status, 200, await step.res.clone().text());
    const html = await step.res.text();
    if (/name="password"/.test(html)) {
      assert.match(html, /name="username"/);
      step = await browser.submit(step.url, html, /\/login/, { username: f.username, password: f.password }, f.base);
    } else {
      step = await browser.submit(step.url, html, /\/confirm/, f.patient ? { patient: f.patient } : {}, f.base);
    }
  }
  return step.url;
}

/** The authorization request with PKCE, then signIn; returns the app's callback URL and the PKCE verifier. */
export async function authorize(f: CodeFlow, browser = new Browser()): Promise<{ callback: URL; verifier: string }> {
  const { verifier, challenge } = pkce();
  const state = randomBytes(8).toString('hex');
  const authorizeUrl = `${f.base}/oauth2/authorize?${new URLSearchParams({
    response_type: 'code', client_id: f.clientId, redirect_uri: f.redirectUri, scope: f.scope, state, aud: f.fhir,
    code_challenge: challenge, code_challenge_method: 'S256', ...(f.launch ? { launch: f.launch } : {}),
  })}`;
  const callback = new URL(await signIn(browser, authorizeUrl, f));
  assert.equal(`${callback.origin}${callback.pathname}`, f.redirectUri, callback.href);
  assert.equal(callback.searchParams.get('state'), state);
  return { callback, verifier };
}

/** Runs the whole authorization code flow with PKCE; returns the token response. */
export async function authorizationCodeFlow(f: CodeFlow, browser?: Browser): Promise<{ status: number; headers: Headers; body: Record<string, any> }> {
  const { callback, verifier } = await authorize(f, browser);
  const code = callback.searchParams.get('code');
  assert.ok(code, callback.href);
  const res = await fetch(`${f.base}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, client_id: f.clientId, redirect_uri: f.redirectUri }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}
