import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { before, describe, it } from 'node:test';
import express from 'express';
import { edgeHeaders } from '../../src/auth/http-security.ts';
import { DRIVERS, request, useServer } from '../support.ts';
import { Browser, pkce } from './smart-flow.ts';

const APP_ORIGIN = 'https://app.example';
const REDIRECT = 'http://localhost:9/callback';

for (const driver of DRIVERS) {
  describe(`CORS, security headers and rate limits (${driver})`, () => {
    const s = useServer(driver, { VIGIL_CORS_ORIGINS: `${APP_ORIGIN}, https://other-app.example`, VIGIL_RATE_LIMIT_TOKEN: '6', VIGIL_RATE_LIMIT_LOGIN: '3' });
    const basic = () => `Basic ${Buffer.from(`${s.clientId}:${s.clientSecret}`).toString('base64')}`;

    before(async () => {
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'hs-app', redirect_uris: [REDIRECT], scopes: 'patient/*.rs' })).status, 201);
    });

    it('sends nosniff and no-referrer on every response, and forbids framing the sign-in pages', async () => {
      const { challenge } = pkce();
      const authorize = `${s.base}/oauth2/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'hs-app', redirect_uri: REDIRECT, scope: 'patient/*.rs', state: 's', aud: s.fhir, code_challenge: challenge, code_challenge_method: 'S256' })}`;
      const responses = await Promise.all(['/healthz', '/fhir/R4/Patient', '/fhir/R4/metadata', '/oauth2/jwks', '/no-such-path'].map((p) => fetch(`${s.base}${p}`)));
      for (const res of responses) {
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff', res.url);
        assert.equal(res.headers.get('referrer-policy'), 'no-referrer', res.url);
        assert.equal(res.headers.get('strict-transport-security'), null, 'no HSTS over plain http');
      }
      const login = await new Browser().follow(authorize, s.base);
      assert.match(await login.res.text(), /name="password"/);
      assert.equal(login.res.headers.get('x-frame-options'), 'DENY');
      assert.match(login.res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.match(login.res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    });

    it('answers CORS for the configured app origins only; discovery for any origin', async () => {
      const preflight = await fetch(`${s.fhir}/Observation`, { method: 'OPTIONS', headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), APP_ORIGIN);
      assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Authorization/);
      assert.match(preflight.headers.get('vary') ?? '', /Origin/);

      const read = await fetch(`${s.fhir}/Patient`, { headers: { origin: APP_ORIGIN, authorization: `Bearer ${s.token}` } });
      assert.equal(read.status, 200);
      assert.equal(read.headers.get('access-control-allow-origin'), APP_ORIGIN);
      assert.match(read.headers.get('access-control-expose-headers') ?? '', /Location/);

      const foreign = await fetch(`${s.fhir}/Patient`, { headers: { origin: 'https://evil.example', authorization: `Bearer ${s.token}` } });
      assert.equal(foreign.headers.get('access-control-allow-origin'), null);
      const foreignPreflight = await fetch(`${s.fhir}/Patient`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
      assert.equal(foreignPreflight.headers.get('access-control-allow-origin'), null);
      assert.equal((await fetch(`${s.fhir}/Patient`, { headers: { authorization: `Bearer ${s.token}` } })).headers.get('access-control-allow-origin'), null, 'same-origin: none needed');

      const discovery = await fetch(`${s.fhir}/.well-known/smart-configuration`, { headers: { origin: 'https://any-smart-app.example' } });
      assert.equal(discovery.headers.get('access-control-allow-origin'), '*');
    });

    it('limits token requests per client IP with 429 and Retry-After, leaving the FHIR API alone', async () => {
      const token = () => fetch(`${s.base}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic() }, body: 'grant_type=client_credentials&scope=system/*.*' });
      const statuses: number[] = [];
      let limited: Response | undefined;
      for (let i = 0; i < 8 && !limited; i++) {
        const res = await token();
        statuses.push(res.status);
        if (res.status === 429) limited = res;
      }
      assert.ok(limited, `never limited: ${statuses}`);
      assert.ok(statuses.filter((st) => st === 200).length >= 4, `${statuses}`);
      const retryAfter = Number(limited.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
      assert.equal(((await limited.json()) as { error: string }).error, 'too_many_requests');
      assert.equal((await request('GET', `${s.fhir}/Patient?_count=1`)).status, 200);
    });

    it('limits sign-in attempts per client IP', async () => {
      const browser = new Browser();
      const { challenge } = pkce();
      const authorize = `${s.base}/oauth2/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'hs-app', redirect_uri: REDIRECT, scope: 'patient/*.rs', state: 's', aud: s.fhir, code_challenge: challenge, code_challenge_method: 'S256' })}`;
      const page = await browser.follow(authorize, s.base);
      const action = /action="([^"]*\/login)"/.exec(await page.res.text())?.[1];
      assert.ok(action);
      const attempt = () => browser.fetch(new URL(action, page.url).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `username=nobody&password=${randomBytes(6).toString('hex')}` });
      for (let i = 0; i < 3; i++) assert.equal((await attempt()).status, 401);
      const limited = await attempt();
      assert.equal(limited.status, 429);
      assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    });
  });
}

describe('security headers behind an https public URL', () => {
  it('adds HSTS', async () => {
    const app = express().use(edgeHeaders('https://vigil.example', [])).get('/x', (_req, res) => void res.send('ok'));
    const server = app.listen(0);
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`);
      assert.match(res.headers.get('strict-transport-security') ?? '', /max-age=\d{7,}/);
    } finally {
      server.close();
    }
  });
});
