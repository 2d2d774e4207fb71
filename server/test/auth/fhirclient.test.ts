import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import smart from 'fhirclient';
import { DRIVERS, freePort, request, useServer } from '../support.ts';
import { Browser, signIn } from './smart-flow.ts';

/**
 * SMART's own JavaScript client (fhirclient, the library SMART apps are built with) completing a
 * standalone launch against Vigil: a server-side app on fhirclient's Node adapter, and a browser
 * (this test) going through Vigil's sign-in form.
 */
for (const driver of DRIVERS) {
  describe(`fhirclient standalone launch (${driver})`, () => {
    const s = useServer(driver);
    let app: Server;
    let appBase = '';

    before(async () => {
      const port = await freePort();
      appBase = `http://127.0.0.1:${port}`;
      // fhirclient keeps its state (PKCE verifier, state, tokens) in a server-side session; one user here
      const session = new Map<string, unknown>();
      const storage = {
        get: async (key: string) => session.get(key),
        set: async (key: string, value: unknown) => (session.set(key, value), value),
        unset: async (key: string) => session.delete(key),
      };
      app = createServer((req, res) => {
        const path = new URL(req.url ?? '/', appBase).pathname;
        const done = (status: number, body: unknown) => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        (async () => {
          if (path === '/launch') {
            await smart(req, res, storage).authorize({ iss: s.fhir, clientId: 'fc-app', scope: 'openid fhirUser launch/patient patient/*.rs offline_access', redirectUri: '/callback' });
          } else if (path === '/callback') {
            const client = await smart(req, res, storage).ready();
            done(200, { patient: await client.patient.read(), user: client.user.fhirUser, tokenResponse: client.state.tokenResponse });
          } else done(404, {});
        })().catch((err: Error) => done(500, { error: err.message }));
      });
      await new Promise<void>((resolve) => app.listen(port, '127.0.0.1', resolve));
      await request('PUT', `${s.fhir}/Patient/fc-a`, { resourceType: 'Patient', id: 'fc-a', name: [{ family: 'Client', given: ['Fhir'] }] });
      assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'fc@test', password: 'correct horse battery', fhirUser: 'Patient/fc-a' })).status, 201);
      const client = await request('POST', `${s.base}/admin/clients`, { client_id: 'fc-app', redirect_uris: [`${appBase}/callback`], scopes: 'patient/*.rs' });
      assert.equal(client.status, 201, JSON.stringify(client.body));
    });
    after(() => new Promise<void>((resolve) => app.close(() => resolve())));

    it('authorizes with PKCE through the login form, exchanges the code and reads the patient in context', async () => {
      const browser = new Browser();
      const launch = await browser.fetch(`${appBase}/launch`);
      assert.equal(launch.status, 302, await launch.text());
      const authorizeUrl = new URL(launch.headers.get('location') ?? '');
      assert.equal(`${authorizeUrl.origin}${authorizeUrl.pathname}`, `${s.base}/oauth2/authorize`);
      assert.equal(authorizeUrl.searchParams.get('code_challenge_method'), 'S256', 'fhirclient found S256 in the SMART configuration');
      assert.equal(authorizeUrl.searchParams.get('aud'), s.fhir);

      const callback = await signIn(browser, authorizeUrl.href, { base: s.base, username: 'fc@test', password: 'correct horse battery' });
      assert.ok(callback.startsWith(`${appBase}/callback?`), callback);
      const res = await browser.fetch(callback);
      const body = (await res.json()) as Record<string, any>;
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.patient.resourceType, 'Patient');
      assert.equal(body.patient.id, 'fc-a');
      assert.equal(body.user, 'Patient/fc-a');
      assert.equal(body.tokenResponse.patient, 'fc-a');
      assert.ok(body.tokenResponse.refresh_token);
    });
  });
}
