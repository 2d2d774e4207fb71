import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { loadConfig } from '../../src/config.ts';
import { DRIVERS, freePort, request, useServer } from '../support.ts';

const ids = (bundle: any): string[] => (bundle.entry ?? []).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();

/** A stand-in for an organisation's identity provider (Keycloak, Entra ID, …): OIDC discovery and a JWKS. */
async function identityProvider(port: number, path: string) {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: `${path}-key`, alg: 'RS256', use: 'sig' };
  const issuer = `http://127.0.0.1:${port}/${path}`;
  return {
    issuer,
    jwk,
    routes: {
      [`/${path}/.well-known/openid-configuration`]: { issuer, jwks_uri: `${issuer}/certs` },
      [`/${path}/certs`]: { keys: [jwk] },
    } as Record<string, unknown>,
    sign: (claims: JWTPayload, key = privateKey, exp = '5m') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }).setIssuer(issuer).setIssuedAt().setExpirationTime(exp).setJti(crypto.randomUUID()).sign(key),
  };
}

for (const driver of DRIVERS) {
  describe(`access tokens from trusted issuers (${driver})`, () => {
    const env: Record<string, string> = {};
    let server: Server;
    let keycloak: Awaited<ReturnType<typeof identityProvider>>;
    let entra: Awaited<ReturnType<typeof identityProvider>>;

    before(async () => {
      const port = await freePort();
      keycloak = await identityProvider(port, 'keycloak');
      entra = await identityProvider(port, 'entra');
      const routes = { ...keycloak.routes, ...entra.routes };
      server = createServer((req, res) => {
        const body = routes[req.url ?? ''];
        res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
      });
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      env.VIGIL_TRUSTED_ISSUERS = JSON.stringify([
        // keys by URL, custom claims
        { issuer: keycloak.issuer, jwks_uri: `${keycloak.issuer}/certs`, audience: 'vigil', fhir_user_claim: 'vigil_fhir_user', scope_claim: 'scp' },
        // keys found through discovery, default claims
        { issuer: entra.issuer, audience: 'api://vigil' },
      ]);
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const s = useServer(driver, env);
    const get = async (path: string, token: string) => request('GET', `${s.fhir}/${path}`, undefined, { authorization: `Bearer ${token}` });

    before(async () => {
      const put = async (r: any) => assert.ok([200, 201].includes((await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r)).status), r.id);
      await put({ resourceType: 'Patient', id: 'ti-a' });
      await put({ resourceType: 'Patient', id: 'ti-b' });
      await put({ resourceType: 'Practitioner', id: 'ti-doc' });
      await put({ resourceType: 'CareTeam', id: 'ti-team', status: 'active', subject: { reference: 'Patient/ti-a' }, participant: [{ member: { reference: 'Practitioner/ti-doc' } }] });
    });

    it('maps a configured claim to fhirUser and another to the scopes: a practitioner sees their care team', async () => {
      const token = await keycloak.sign({ sub: 'kc-user-1', aud: 'vigil', azp: 'ehr-portal', vigil_fhir_user: 'Practitioner/ti-doc', scp: ['user/*.rs'] });
      const res = await get('Patient', token);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(ids(res.body), ['Patient/ti-a']);
      assert.equal((await get('Patient/ti-b', token)).status, 404);
      assert.equal((await request('PUT', `${s.fhir}/Patient/ti-a`, { resourceType: 'Patient', id: 'ti-a' }, { authorization: `Bearer ${token}` })).status, 403, 'read-only scopes');
    });

    it('finds an issuer\'s keys through discovery and accepts fhirUser as an absolute URL on this server', async () => {
      const token = await entra.sign({ sub: 'entra-oid-7', aud: 'api://vigil', fhirUser: `${s.fhir}/Patient/ti-b`, scope: 'patient/*.rs' });
      assert.deepEqual(ids((await get('Patient', token)).body), ['Patient/ti-b'], 'a patient user is in their own context');
      assert.equal((await get('Patient/ti-a', token)).status, 404);
      const elsewhere = await entra.sign({ sub: 'entra-oid-8', aud: 'api://vigil', fhirUser: 'https://other.example/fhir/Practitioner/ti-doc', scope: 'user/*.rs' });
      assert.deepEqual(ids((await get('Patient', elsewhere)).body), [], 'a user of another FHIR server is nobody here');
    });

    it('refuses wrong audience, expired, untrusted, forged and alg:none tokens', async () => {
      const claims = { sub: 'kc-user-1', aud: 'vigil', vigil_fhir_user: 'Practitioner/ti-doc', scp: ['user/*.rs'] };
      const control = await keycloak.sign(claims);
      assert.equal((await get('Patient', control)).status, 200, 'control');
      const { privateKey: stranger } = await generateKeyPair('RS256');
      const refused = [
        await keycloak.sign({ ...claims, aud: 'api://vigil' }),
        await keycloak.sign(claims, undefined, '-1m'),
        await keycloak.sign(claims, stranger),
        await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'x' }).setIssuer('http://127.0.0.1:1/untrusted').setIssuedAt().setExpirationTime('5m').sign(stranger),
        `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${control.split('.')[1]}.`,
      ];
      for (const token of refused) assert.equal((await get('Patient', token)).status, 401, token.slice(0, 40));
    });

    it('refuses a malformed VIGIL_TRUSTED_ISSUERS at start-up', () => {
      assert.throws(() => loadConfig({ VIGIL_TRUSTED_ISSUERS: '{"issuer":' }), /JSON array/);
      assert.throws(() => loadConfig({ VIGIL_TRUSTED_ISSUERS: '[{"issuer":"https://idp.example"}]' }), /audience/);
      assert.throws(() => loadConfig({ VIGIL_TRUSTED_ISSUERS: '[{"issuer":"ftp://idp.example","audience":"x"}]' }), /issuer/);
    });
  });
}
