import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { clientCredentialsToken, DRIVERS, request, useServer } from '../support.ts';
import { authorizationCodeFlow } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'correct horse battery';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

for (const driver of DRIVERS) {
  describe(`token introspection and revocation (${driver})`, () => {
    const s = useServer(driver);
    const otherSecret = randomBytes(18).toString('base64url');
    const post = async (endpoint: 'introspect' | 'revoke', body: Record<string, string>, authorization?: string) => {
      const res = await fetch(`${s.base}/oauth2/${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
        body: new URLSearchParams(body),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, any>) : undefined };
    };
    const bootstrap = () => basic(s.clientId, s.clientSecret);
    const fhirStatus = async (token: string) => (await request('GET', `${s.fhir}/Patient?_count=1`, undefined, { authorization: `Bearer ${token}` })).status;
    const userFlow = () => authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'tl-app', redirectUri: REDIRECT, scope: 'openid fhirUser launch/patient patient/*.rs offline_access', username: 'tl@test', password: PASSWORD });

    before(async () => {
      assert.equal((await request('PUT', `${s.fhir}/Patient/tl-a`, { resourceType: 'Patient', id: 'tl-a' })).status, 201);
      assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'tl@test', password: PASSWORD, fhirUser: 'Patient/tl-a' })).status, 201);
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'tl-app', redirect_uris: [REDIRECT], scopes: 'patient/*.rs' })).status, 201);
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'tl-other-app', redirect_uris: [REDIRECT], scopes: 'patient/*.rs' })).status, 201);
      assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'tl-other', secret: otherSecret, scopes: 'system/Patient.rs' })).status, 201);
    });

    it('introspects a JWT access token: active with its claims, then inactive once revoked, and the FHIR API refuses it at once', async () => {
      const token = await clientCredentialsToken(s.base, s.clientId, s.clientSecret);
      assert.equal(await fhirStatus(token), 200, 'verified and cached by the bearer check');
      const active = await post('introspect', { token }, bootstrap());
      assert.equal(active.status, 200, JSON.stringify(active.body));
      assert.equal(active.headers.get('cache-control'), 'no-store');
      assert.equal(active.body?.active, true);
      assert.equal(active.body?.client_id, s.clientId);
      assert.equal(active.body?.scope, 'system/*.*');
      assert.equal(active.body?.iss, s.base);
      assert.equal(active.body?.aud, s.fhir);
      assert.equal(active.body?.token_type, 'Bearer');
      for (const claim of ['exp', 'iat', 'jti']) assert.ok(active.body?.[claim], claim);

      const revoked = await post('revoke', { token, token_type_hint: 'access_token' }, bootstrap());
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
      assert.equal(await fhirStatus(token), 401, 'refused at once, whatever the bearer cache holds');
      assert.deepEqual((await post('introspect', { token }, bootstrap())).body, { active: false });
      assert.equal(await fhirStatus(await clientCredentialsToken(s.base, s.clientId, s.clientSecret)), 200, 'the client\'s other tokens are untouched');
    });

    it('answers tampered, foreign and garbage tokens as inactive, and needs an authenticated client', async () => {
      const token = await clientCredentialsToken(s.base, s.clientId, s.clientSecret);
      const [h, p, sig] = token.split('.');
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
      const widened = `${h}.${Buffer.from(JSON.stringify({ ...payload, scope: 'system/*.* user/*.*' })).toString('base64url')}.${sig}`;
      for (const t of [widened, `${h}.${p}.${sig.slice(0, -4)}AAAA`, 'not-a-token']) {
        const res = await post('introspect', { token: t }, bootstrap());
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { active: false }, t.slice(0, 30));
        assert.equal((await post('revoke', { token: t }, bootstrap())).status, 200, 'revoking an invalid token is a no-op');
      }
      const anonymous = await post('introspect', { token });
      assert.equal(anonymous.status, 400, 'no client authentication');
      assert.equal(anonymous.body?.error, 'invalid_request');
      assert.equal((await post('introspect', { token }, basic(s.clientId, 'wrong-secret-wrong-secret'))).status, 401);
      assert.equal(await fhirStatus(token), 200);
    });

    it('lets only the client a token was issued to revoke it', async () => {
      const token = await clientCredentialsToken(s.base, s.clientId, s.clientSecret);
      const res = await post('revoke', { token }, basic('tl-other', otherSecret));
      assert.equal(res.status, 400);
      assert.equal(res.body?.error, 'invalid_request');
      assert.equal(await fhirStatus(token), 200);
      const introspected = await post('introspect', { token }, basic('tl-other', otherSecret));
      assert.equal(introspected.body?.active, true, 'a confidential client may introspect (a resource server\'s question)');
    });

    it('introspects and revokes a public app\'s tokens: its own only; revoking the refresh token ends its access tokens too', async () => {
      const flow = await userFlow();
      assert.equal(flow.status, 200, JSON.stringify(flow.body));
      const { access_token: accessToken, refresh_token: refreshToken } = flow.body;
      const mine = await post('introspect', { token: accessToken, client_id: 'tl-app' });
      assert.equal(mine.body?.active, true);
      assert.equal(mine.body?.fhirUser, 'Patient/tl-a');
      assert.equal(mine.body?.patient, 'tl-a');
      assert.equal(mine.body?.sub, 'tl@test');
      assert.deepEqual((await post('introspect', { token: accessToken, client_id: 'tl-other-app' })).body, { active: false }, 'another public client learns nothing');
      const refresh = await post('introspect', { token: refreshToken, client_id: 'tl-app' });
      assert.equal(refresh.body?.active, true);
      assert.equal(refresh.body?.client_id, 'tl-app');
      // a resource server (any confidential client) learns whether the app's tokens are active, and whose they are
      const asServer = await post('introspect', { token: accessToken }, bootstrap());
      assert.equal(asServer.status, 200, JSON.stringify(asServer.body));
      assert.deepEqual([asServer.body?.active, asServer.body?.client_id, asServer.body?.sub, asServer.body?.fhirUser, asServer.body?.patient], [true, 'tl-app', 'tl@test', 'Patient/tl-a', 'tl-a']);
      assert.equal((await post('introspect', { token: refreshToken }, bootstrap())).body?.active, true);
      // the token's client named as client_id beside another client's credentials is two identities (RFC 6749 §2.3)
      const mixed = await post('introspect', { token: accessToken, client_id: 'tl-app' }, bootstrap());
      assert.deepEqual([mixed.status, mixed.body?.error], [400, 'invalid_request']);

      assert.equal((await post('revoke', { token: accessToken, client_id: 'tl-other-app' })).status, 200, 'silently ignored for a public client');
      assert.equal(await fhirStatus(accessToken), 200);

      assert.equal((await post('revoke', { token: refreshToken, client_id: 'tl-app' })).status, 200);
      assert.equal((await post('introspect', { token: refreshToken, client_id: 'tl-app' })).body?.active, false);
      const renewed = await fetch(`${s.base}/oauth2/token`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'tl-app' }),
      });
      assert.equal(renewed.status, 400);
      assert.equal(await fhirStatus(accessToken), 401, 'the grant is revoked, and with it the access tokens it gave');
      assert.deepEqual((await post('introspect', { token: accessToken }, bootstrap())).body, { active: false }, 'also to a resource server');

      const again = await userFlow();
      assert.equal(await fhirStatus(again.body.access_token), 200, 'a new authorization is unaffected');
    });
  });
}
