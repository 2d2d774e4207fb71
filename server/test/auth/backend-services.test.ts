import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { DRIVERS, request, useServer } from '../support.ts';

const form = (body: Record<string, string>) => new URLSearchParams(body);
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

for (const driver of DRIVERS) {
  describe(`SMART backend services (${driver})`, () => {
    const s = useServer(driver);
    const tokenUrl = () => `${s.base}/oauth2/token`;

    async function token(body: Record<string, string>, headers: Record<string, string> = {}) {
      const res = await fetch(tokenUrl(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form(body) });
      return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
    }

    it('publishes SMART discovery as application/json whatever the Accept header', async () => {
      const res = await fetch(`${s.fhir}/.well-known/smart-configuration`, { headers: { accept: 'text/html' } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await res.json()) as Record<string, any>;
      assert.equal(body.token_endpoint, `${s.base}/oauth2/token`);
      assert.deepEqual(body.code_challenge_methods_supported, ['S256']);
      assert.ok(body.token_endpoint_auth_signing_alg_values_supported.includes('RS384'));
      assert.ok(body.token_endpoint_auth_signing_alg_values_supported.includes('ES384'));
      assert.ok(body.capabilities.includes('client-confidential-asymmetric'));
      const oidc = (await (await fetch(`${s.base}/.well-known/openid-configuration`)).json()) as Record<string, any>;
      assert.equal(oidc.issuer, s.base);
      assert.ok(oidc.id_token_signing_alg_values_supported.includes('RS256'));
      const metadata = await request('GET', `${s.fhir}/metadata`, undefined, { authorization: '' });
      assert.equal(metadata.status, 200);
      const security = metadata.body.rest[0].security;
      const uris = security.extension[0].extension;
      assert.ok(uris.some((e: any) => e.url === 'token' && e.valueUri === `${s.base}/oauth2/token`));
    });

    it('issues a short-lived JWT for client_credentials with client_secret_basic', async () => {
      const res = await token({ grant_type: 'client_credentials', scope: 'system/*.*' }, { authorization: basic(s.clientId, s.clientSecret) });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.token_type, 'Bearer');
      assert.equal(typeof res.body.expires_in, 'number');
      assert.ok(res.body.expires_in <= 300);
      assert.equal(res.body.scope, 'system/*.*');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('pragma'), 'no-cache');
      const read = await request('GET', `${s.fhir}/Patient?_count=1`, undefined, { authorization: `Bearer ${res.body.access_token}` });
      assert.equal(read.status, 200);
    });

    it('refuses a wrong secret', async () => {
      const res = await token({ grant_type: 'client_credentials', scope: 'system/*.*' }, { authorization: basic(s.clientId, 'not-the-secret-at-all') });
      assert.equal(res.status, 401);
      assert.equal(res.body.error, 'invalid_client');
    });

    for (const alg of ['RS384', 'ES384'] as const) {
      it(`accepts a private_key_jwt assertion signed with ${alg}, once`, async () => {
        const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
        const jwk = { ...(await exportJWK(publicKey)), alg, kid: `k-${alg}` };
        const clientId = `backend-${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`;
        const reg = await request('POST', `${s.base}/admin/clients`, { client_id: clientId, scopes: 'system/Observation.rs system/Patient.read', jwks: { keys: [jwk] } });
        assert.equal(reg.status, 201, JSON.stringify(reg.body));
        const assertion = await new SignJWT({})
          .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
          .setIssuer(clientId).setSubject(clientId).setAudience(tokenUrl())
          .setJti(randomUUID()).setIssuedAt().setExpirationTime('4m')
          .sign(privateKey);
        const body = {
          grant_type: 'client_credentials',
          scope: 'system/Observation.rs system/Patient.rs system/Practitioner.rs',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        };
        const res = await token(body);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        // Practitioner is not registered; Patient.rs is covered by Patient.read
        assert.equal(res.body.scope, 'system/Observation.rs system/Patient.rs');
        const replay = await token(body);
        assert.equal(replay.status, 401, 'a jti is single use');
        const at = `Bearer ${res.body.access_token}`;
        assert.equal((await request('GET', `${s.fhir}/Observation`, undefined, { authorization: at })).status, 200);
        const practitioners = await request('GET', `${s.fhir}/Practitioner`, undefined, { authorization: at });
        assert.equal(practitioners.body.total ?? practitioners.body.entry?.length ?? 0, 0);
        const write = await request('POST', `${s.fhir}/Observation`, { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, { authorization: at });
        assert.equal(write.status, 403);
      });
    }

    it('answers 401 OperationOutcomes without a valid token, except for open endpoints', async () => {
      const none = await request('GET', `${s.fhir}/Patient`, undefined, { authorization: '' });
      assert.equal(none.status, 401);
      assert.equal(none.body.resourceType, 'OperationOutcome');
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
      const ingest = await fetch(`${s.base}/ingest/mappings`);
      assert.equal(ingest.status, 401);
      for (const open of ['/healthz', '/readyz', '/fhir/R4/metadata']) assert.equal((await fetch(`${s.base}${open}`)).status, 200, open);
    });

    it('refuses tampered, expired, alg:none and wrong-audience tokens', async () => {
      const [h, p, sig] = s.token.split('.');
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const header = JSON.parse(Buffer.from(h, 'base64url').toString());
      const forged = [
        `${h}.${enc({ ...payload, scope: 'system/*.* patient/*.*' })}.${sig}`,
        `${enc({ ...header, alg: 'none' })}.${p}.`,
        `${enc({ ...header, alg: 'none' })}.${enc({ ...payload, exp: payload.exp + 3600 })}.`,
        `${h}.${p}.${sig.slice(0, -4)}AAAA`,
      ];
      for (const t of forged) {
        const res = await request('GET', `${s.fhir}/Patient`, undefined, { authorization: `Bearer ${t}` });
        assert.equal(res.status, 401, t.slice(0, 40));
      }
      // validly signed by another key (another issuer's): refused
      const { privateKey } = await generateKeyPair('RS256');
      const other = await new SignJWT({ ...payload }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: header.kid }).sign(privateKey);
      assert.equal((await request('GET', `${s.fhir}/Patient`, undefined, { authorization: `Bearer ${other}` })).status, 401);
      // expired and wrong-audience tokens signed with the server's own key are covered in access-control.test.ts
    });
  });
}
