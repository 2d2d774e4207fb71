import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { DRIVERS, request, useServer } from '../support.ts';
import { authorizationCodeFlow, authorize, Browser, type CodeFlow } from './smart-flow.ts';

const VIGIL_REDIRECT = 'http://localhost:9/vigil-callback';
const APP_REDIRECT = 'http://localhost:9/smart-app';
const PASSWORD = 'correct horse battery';
const claims = (jwt: string): Record<string, any> => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

for (const driver of DRIVERS) {
  describe(`SMART EHR launch (${driver})`, () => {
    const s = useServer(driver);
    const as = (token: string) => ({ authorization: `Bearer ${token}` });
    const app = (username: string, launch?: string, clientId = 'el-app'): CodeFlow => ({
      base: s.base, fhir: s.fhir, clientId, redirectUri: APP_REDIRECT, scope: 'launch openid fhirUser patient/*.rs', username, password: PASSWORD, launch,
    });
    /** The Vigil app's own sign-in: the clinician's user token that creates launches. */
    const vigilToken = async (username: string): Promise<string> => {
      const res = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'el-vigil', redirectUri: VIGIL_REDIRECT, scope: 'openid fhirUser user/*.rs', username, password: PASSWORD });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.access_token;
    };
    const launch = (token: string | undefined, body: unknown) =>
      request('POST', `${s.base}/auth/launch`, body, token === undefined ? { authorization: '', 'content-type': 'application/json' } : { ...as(token), 'content-type': 'application/json' });
    let docToken = '';

    before(async () => {
      const put = async (r: any) => assert.ok([200, 201].includes((await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r)).status), r.id);
      for (const p of ['el-a', 'el-b', 'el-c']) await put({ resourceType: 'Patient', id: p, name: [{ family: p }] });
      for (const d of ['el-doc', 'el-other-doc']) await put({ resourceType: 'Practitioner', id: d });
      await put({ resourceType: 'CareTeam', id: 'el-team', status: 'active', subject: { reference: 'Patient/el-a' }, participant: [{ member: { reference: 'Practitioner/el-doc' } }] });
      await put({ resourceType: 'CareTeam', id: 'el-team-c', status: 'active', subject: { reference: 'Patient/el-c' }, participant: [{ member: { reference: 'Practitioner/el-doc' } }] });
      await put({ resourceType: 'CareTeam', id: 'el-team-other', status: 'active', subject: { reference: 'Patient/el-b' }, participant: [{ member: { reference: 'Practitioner/el-other-doc' } }] });
      await put({ resourceType: 'Encounter', id: 'el-enc-a', status: 'in-progress', class: { code: 'VR' }, subject: { reference: 'Patient/el-a' } });
      await put({ resourceType: 'Encounter', id: 'el-enc-b', status: 'in-progress', class: { code: 'VR' }, subject: { reference: 'Patient/el-b' } });
      for (const [username, fhirUser] of [['el-doc@test', 'Practitioner/el-doc'], ['el-other@test', 'Practitioner/el-other-doc']]) {
        assert.equal((await request('POST', `${s.base}/admin/users`, { username, password: PASSWORD, fhirUser })).status, 201);
      }
      for (const [client_id, redirect, scopes] of [['el-vigil', VIGIL_REDIRECT, 'user/*.cruds'], ['el-app', APP_REDIRECT, 'patient/*.rs'], ['el-other-app', APP_REDIRECT, 'patient/*.rs']]) {
        const res = await request('POST', `${s.base}/admin/clients`, { client_id, redirect_uris: [redirect], scopes });
        assert.equal(res.status, 201, JSON.stringify(res.body));
      }
      docToken = await vigilToken('el-doc@test');
    });

    it('advertises EHR launch in SMART discovery', async () => {
      const body = (await (await fetch(`${s.fhir}/.well-known/smart-configuration`)).json()) as { capabilities: string[]; scopes_supported: string[] };
      for (const c of ['launch-ehr', 'context-ehr-patient', 'context-ehr-encounter']) assert.ok(body.capabilities.includes(c), c);
      assert.ok(body.scopes_supported.includes('launch'));
    });

    it('runs the EHR launch: a launch context from the Vigil app, login form, PKCE, patient and encounter in the token response', async () => {
      const created = await launch(docToken, { patient: 'Patient/el-a', encounter: 'el-enc-a', client_id: 'el-app' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.match(created.body.launch, /^[A-Za-z0-9_-]{20,}$/);
      assert.equal(created.headers.get('cache-control'), 'no-store');

      const res = await authorizationCodeFlow(app('el-doc@test', created.body.launch));
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.patient, 'el-a');
      assert.equal(res.body.encounter, 'el-enc-a');
      assert.equal(res.body.need_patient_banner, false);
      assert.equal(res.body.smart_style_url, `${s.base}/smart-style.json`);
      assert.ok(res.body.scope.split(' ').includes('launch'));
      assert.equal(claims(res.body.id_token).fhirUser, `${s.fhir}/Practitioner/el-doc`);
      const at = claims(res.body.access_token);
      assert.equal(at.patient, 'el-a');
      assert.equal(at.encounter, 'el-enc-a');
      assert.equal((await request('GET', `${s.fhir}/Patient/el-a`, undefined, as(res.body.access_token))).status, 200);
      assert.equal((await request('GET', `${s.fhir}/Patient/el-c`, undefined, as(res.body.access_token))).status, 404, 'patient/ scopes reach the launch patient only');
    });

    it('gives each launch its own context, also when the browser is already signed in', async () => {
      const browser = new Browser();
      const first = await launch(docToken, { patient: 'el-a' });
      const a = await authorizationCodeFlow(app('el-doc@test', first.body.launch), browser);
      assert.equal(a.body.patient, 'el-a');
      assert.equal(a.body.encounter, undefined);
      const second = await launch(docToken, { patient: 'el-c' });
      const c = await authorizationCodeFlow(app('el-doc@test', second.body.launch), browser);
      assert.equal(c.status, 200, JSON.stringify(c.body));
      assert.equal(c.body.patient, 'el-c', 'not the earlier grant\'s patient');
    });

    it('creates launches only for patients and encounters the user may see, and names the bad field', async () => {
      const outcome = (res: { status: number; body: any }, status: number, path: string) => {
        assert.equal(res.status, status, JSON.stringify(res.body));
        assert.equal(res.body.resourceType, 'OperationOutcome');
        assert.deepEqual(res.body.issue[0].expression, [path]);
      };
      outcome(await launch(docToken, { patient: 'el-b' }), 404, 'patient');
      outcome(await launch(docToken, { patient: 'no-such-patient' }), 404, 'patient');
      outcome(await launch(docToken, { patient: 'el-a', encounter: 'el-enc-b' }), 404, 'encounter');
      outcome(await launch(docToken, {}), 400, 'patient');
      outcome(await launch(docToken, { patient: "el-a' OR 1=1 --" }), 400, 'patient');
      outcome(await launch(docToken, { patient: 'el-a', client_id: 'no-such-app' }), 400, 'client_id');
      assert.equal((await launch(undefined, { patient: 'el-a' })).status, 401);
      assert.equal((await launch(s.token, { patient: 'el-a' })).status, 403, 'a system token is nobody\'s session');
    });

    it('refuses a launch redeemed by another user, by another app, or unknown', async () => {
      const refused = async (flow: CodeFlow) => {
        const { callback } = await authorize(flow);
        assert.equal(callback.searchParams.get('error'), 'invalid_request', callback.href);
        assert.equal(callback.searchParams.get('code'), null);
      };
      const forApp = await launch(docToken, { patient: 'el-a', client_id: 'el-app' });
      await refused(app('el-other@test', forApp.body.launch));
      await refused(app('el-doc@test', forApp.body.launch, 'el-other-app'));
      await refused(app('el-doc@test', 'not-a-launch'));
      await refused(app('el-doc@test'));
    });
  });
}
