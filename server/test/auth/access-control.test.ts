import assert from 'node:assert/strict';
import { describe, it, before } from 'node:test';
import { importJWK, SignJWT, type JWK } from 'jose';
import { DRIVERS, request, useServer } from '../support.ts';
import { authorizationCodeFlow, Browser, pkce } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/callback';
const LOINC_HR = 'http://loinc.org|8867-4';
const ids = (bundle: any): string[] => (bundle.entry ?? []).map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();
const claims = (jwt: string): Record<string, any> => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
/** $evaluate-rule of a draft pulse rule on one patient. */
const tryRule = (patient: string) => ({
  resourceType: 'Parameters',
  parameter: [
    {
      name: 'rule',
      resource: {
        resourceType: 'PlanDefinition', status: 'draft', title: 'Pulse above 60',
        meta: { profile: ['https://vigil.health/fhir/StructureDefinition/vigil-alert-rule'] },
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/plan-definition-type', code: 'eca-rule' }] },
        action: [{
          description: 'Pulse above 60', priority: 'routine',
          trigger: [{ type: 'data-added', data: [{ type: 'Observation', codeFilter: [{ path: 'code', code: [{ system: 'http://loinc.org', code: '8867-4' }] }] }] }],
          condition: [{ kind: 'applicability', expression: { language: 'text/fhirpath', expression: 'value.value > 60' } }],
        }],
      },
    },
    { name: 'patient', valueString: patient },
  ],
});
const verdict = (res: { status: number; body: any }) =>
  res.status === 200 ? `fires=${res.body.parameter.find((p: any) => p.name === 'fires').valueBoolean}` : `${res.status} ${res.body.issue?.[0]?.diagnostics}`;

for (const driver of DRIVERS) {
  describe(`SMART authorization and access control (${driver})`, () => {
    const s = useServer(driver);
    const flow = (username: string, scope: string, patient?: string) =>
      authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'ac-app', redirectUri: REDIRECT, scope, username, password: 'correct horse battery', patient });
    const as = (token: string) => ({ authorization: `Bearer ${token}` });
    let patientToken = '';

    before(async () => {
      const put = async (r: any) => assert.ok([200, 201].includes((await request('PUT', `${s.fhir}/${r.resourceType}/${r.id}`, r)).status), r.id);
      await put({ resourceType: 'Patient', id: 'ac-a', name: [{ family: 'Alpha' }] });
      await put({ resourceType: 'Patient', id: 'ac-b', name: [{ family: 'Bravo' }] });
      await put({ resourceType: 'Practitioner', id: 'ac-doc', name: [{ family: 'Doc' }] });
      await put({ resourceType: 'CareTeam', id: 'ac-team', status: 'active', subject: { reference: 'Patient/ac-a' }, participant: [{ member: { reference: 'Practitioner/ac-doc' } }] });
      await put({ resourceType: 'CareTeam', id: 'ac-old-team', status: 'inactive', subject: { reference: 'Patient/ac-b' }, participant: [{ member: { reference: 'Practitioner/ac-doc' } }] });
      for (const p of ['a', 'b']) {
        await put({
          resourceType: 'Observation', id: `ac-obs-${p}`, status: 'final', subject: { reference: `Patient/ac-${p}` }, performer: [{ reference: 'Practitioner/ac-doc' }],
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, effectiveDateTime: new Date().toISOString(), valueQuantity: { value: 70, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
        });
      }
      for (const [username, fhirUser] of [['alpha@test', 'Patient/ac-a'], ['doc@test', 'Practitioner/ac-doc']]) {
        const res = await request('POST', `${s.base}/admin/users`, { username, password: 'correct horse battery', fhirUser });
        assert.equal(res.status, 201, JSON.stringify(res.body));
      }
      const client = await request('POST', `${s.base}/admin/clients`, { client_id: 'ac-app', redirect_uris: [REDIRECT], scopes: 'patient/*.cruds user/*.cruds' });
      assert.equal(client.status, 201, JSON.stringify(client.body));
    });

    it('runs the authorization code flow with PKCE for a patient: login form, consent, SMART token response, id_token, refresh', async () => {
      const res = await flow('alpha@test', 'openid fhirUser launch/patient patient/*.rs offline_access');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.token_type, 'Bearer');
      assert.ok(typeof res.body.expires_in === 'number' && res.body.expires_in <= 3600);
      assert.equal(res.body.patient, 'ac-a');
      assert.equal(res.body.need_patient_banner, true);
      assert.match(res.body.smart_style_url, /^http/);
      assert.equal(res.headers.get('pragma'), 'no-cache');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      for (const scope of ['openid', 'fhirUser', 'launch/patient', 'patient/*.rs', 'offline_access']) assert.ok(res.body.scope.split(' ').includes(scope), scope);
      assert.equal(claims(res.body.id_token).fhirUser, `${s.fhir}/Patient/ac-a`);
      assert.ok(res.body.refresh_token, 'offline_access gives a refresh token');
      patientToken = res.body.access_token;
      assert.equal((await request('GET', `${s.fhir}/Patient/ac-a`, undefined, as(patientToken))).status, 200);

      const refresh = (scope?: string) => fetch(`${s.base}/oauth2/token`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: res.body.refresh_token, client_id: 'ac-app', ...(scope ? { scope } : {}) }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }));
      const narrower = await refresh('patient/*.rs');
      assert.equal(narrower.status, 200, JSON.stringify(narrower.body));
      assert.equal(narrower.body.scope, 'patient/*.rs');
      const wider = await refresh('patient/*.rs user/*.cruds');
      assert.notEqual(wider.status, 200, 'a refresh may not widen the scope');
    });

    it('gives a patient token nothing of another patient: read, vread, history, search, _include, _revinclude, chains, _has', async () => {
      const t = as(patientToken);
      const get = (path: string) => request('GET', `${s.fhir}/${path}`, undefined, t);
      for (const path of ['Patient/ac-b', 'Observation/ac-obs-b', 'Observation/ac-obs-b/_history/1', 'Observation/ac-obs-b/_history', 'CareTeam/ac-old-team']) {
        const res = await get(path);
        assert.equal(res.status, 404, path);
        assert.equal(res.body.resourceType, 'OperationOutcome');
      }
      assert.equal((await get('Observation/does-not-exist')).status, 404, 'absent and forbidden look alike');
      assert.deepEqual(ids((await get('Observation')).body), ['Observation/ac-obs-a']);
      assert.deepEqual(ids((await get('Observation?subject=Patient/ac-b')).body), []);
      assert.deepEqual(ids((await get('Patient')).body), ['Patient/ac-a']);
      assert.deepEqual(ids((await get('Patient?_id=ac-b')).body), []);
      assert.deepEqual(ids((await get('Observation?_include=Observation:subject')).body), ['Observation/ac-obs-a', 'Patient/ac-a']);
      assert.deepEqual(ids((await get('Patient?_revinclude=Observation:subject&_revinclude=CareTeam:subject')).body), ['CareTeam/ac-team', 'Observation/ac-obs-a', 'Patient/ac-a']);
      assert.deepEqual(ids((await get('Observation?subject:Patient.name=Bravo')).body), []);
      assert.deepEqual(ids((await get(`Patient?_has:Observation:subject:code=${encodeURIComponent(LOINC_HR)}`)).body), ['Patient/ac-a']);
      assert.deepEqual(ids((await get('CareTeam?participant=Practitioner/ac-doc')).body), ['CareTeam/ac-team']);
      assert.equal((await get('Observation?_summary=count')).body.total, 1);
      // Practitioner is outside the Patient compartment: patient/*.rs reaches it by type
      assert.equal((await get('Practitioner/ac-doc')).status, 200);
      assert.equal((await get('Observation/_history')).status, 403);
      assert.equal((await get('_history')).status, 403);
      const batch = await request('POST', `${s.fhir}`, { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/ac-b' } }] }, t);
      assert.equal(batch.body.entry[0].response.status, '404', 'a batch entry is checked as its own request would be');
      assert.equal((await get('Patient/ac-b/$everything')).status, 404, 'another patient\'s $everything looks absent');
      assert.deepEqual(ids((await get('Patient/ac-a/$everything')).body).filter((r) => r.startsWith('Observation/')), ['Observation/ac-obs-a']);
      // the monitoring operations read through the same restriction as search
      assert.deepEqual(ids((await get('Observation/$lastn?patient=ac-b')).body), []);
      assert.deepEqual(ids((await get('Observation/$lastn?patient=ac-a')).body), ['Observation/ac-obs-a']);
      const count = async (path: string) => (await get(path)).body.parameter?.[0]?.resource?.component?.[0]?.valueInteger;
      assert.equal(await count(`Observation/$stats?patient=ac-b&coding=${encodeURIComponent(LOINC_HR)}&statistic=count`), 0);
      assert.equal(await count(`Observation/$stats?patient=ac-a&coding=${encodeURIComponent(LOINC_HR)}&statistic=count`), 1);
      assert.deepEqual((await get(`Observation/$timeseries?patient=ac-b&coding=${encodeURIComponent(LOINC_HR)}&duration=87600`)).body.parameter, []);
      // a patient may try a rule on themself only; another patient looks absent
      const evaluate = async (patient: string) => verdict(await request('POST', `${s.fhir}/PlanDefinition/$evaluate-rule`, tryRule(patient), t));
      assert.equal(await evaluate('ac-a'), 'fires=true');
      assert.equal(await evaluate('ac-b'), '400 Patient/ac-b does not exist');
    });

    it('refuses writes outside the token: read-only scopes, another patient\'s compartment', async () => {
      const obs = (p: string) => ({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${p}` } });
      assert.equal((await request('POST', `${s.fhir}/Observation`, obs('ac-a'), as(patientToken))).status, 403, 'patient/*.rs cannot create');
      const writer = await flow('alpha@test', 'launch/patient patient/*.cruds');
      assert.equal(writer.status, 200, JSON.stringify(writer.body));
      const w = as(writer.body.access_token);
      assert.equal((await request('POST', `${s.fhir}/Observation`, obs('ac-a'), w)).status, 201);
      assert.equal((await request('POST', `${s.fhir}/Observation`, obs('ac-b'), w)).status, 403);
      assert.equal((await request('PUT', `${s.fhir}/Observation/ac-obs-b`, { ...obs('ac-a'), id: 'ac-obs-b' }, w)).status, 404, 'existing but unseen');
      assert.equal((await request('DELETE', `${s.fhir}/Patient/ac-b`, undefined, w)).status, 404);
      assert.equal((await request('PUT', `${s.fhir}/Patient/ac-new`, { resourceType: 'Patient', id: 'ac-new' }, w)).status, 403);
      assert.equal((await request('GET', `${s.fhir}/Patient/ac-b`)).status, 200, 'still there');
      // outside the compartment: the clinic's directory and alert rules are read-only to a patient
      for (const t of [w, as((await flow('alpha@test', 'user/*.cruds')).body.access_token)]) {
        assert.equal((await request('GET', `${s.fhir}/Practitioner/ac-doc`, undefined, t)).status, 200);
        assert.equal((await request('PUT', `${s.fhir}/Practitioner/ac-doc`, { resourceType: 'Practitioner', id: 'ac-doc', name: [{ family: 'Mallory' }] }, t)).status, 403);
        assert.equal((await request('POST', `${s.fhir}/PlanDefinition`, { resourceType: 'PlanDefinition', status: 'active' }, t)).status, 403);
        const sub = { resourceType: 'Subscription', status: 'requested', reason: 'portal', criteria: 'Observation?patient=Patient/ac-a', channel: { type: 'websocket' } };
        assert.equal((await request('POST', `${s.fhir}/Subscription`, sub, t)).status, 201, 'a patient subscribes to their own data');
      }
      assert.equal((await request('GET', `${s.fhir}/Practitioner/ac-doc`)).body.name[0].family, 'Doc');
    });

    it('lets a practitioner see only the patients of their active care teams, and pick one of them', async () => {
      const user = await flow('doc@test', 'openid fhirUser user/*.rs');
      assert.equal(user.status, 200, JSON.stringify(user.body));
      assert.equal(claims(user.body.id_token).fhirUser, `${s.fhir}/Practitioner/ac-doc`);
      const get = (path: string) => request('GET', `${s.fhir}/${path}`, undefined, as(user.body.access_token));
      assert.deepEqual(ids((await get('Patient')).body), ['Patient/ac-a']);
      assert.equal((await get('Observation/ac-obs-b')).status, 404);
      assert.equal((await get('Observation/ac-obs-a')).status, 200);
      assert.equal((await get('Practitioner/ac-doc')).status, 200);
      // rules are tried on the care teams' patients; one whose team is no longer active looks absent
      const evaluate = async (patient: string) => verdict(await request('POST', `${s.fhir}/PlanDefinition/$evaluate-rule`, tryRule(patient), as(user.body.access_token)));
      assert.equal(await evaluate('ac-a'), 'fires=true');
      assert.equal(await evaluate('ac-b'), '400 Patient/ac-b does not exist');
      assert.equal(await evaluate('ac-nobody'), '400 Patient/ac-nobody does not exist');
      assert.equal(verdict(await request('POST', `${s.fhir}/PlanDefinition/$evaluate-rule`, tryRule('ac-b'))), 'fires=true', 'the same request with a system token');

      const picked = await flow('doc@test', 'launch/patient patient/*.rs', 'ac-a');
      assert.equal(picked.status, 200, JSON.stringify(picked.body));
      assert.equal(picked.body.patient, 'ac-a');
      await assert.rejects(flow('doc@test', 'launch/patient patient/*.rs', 'ac-b'), 'a patient outside the care team cannot be picked');
    });

    it('requires PKCE S256 and the right aud, and locks an account after repeated wrong passwords', async () => {
      const browser = new Browser();
      const params = { response_type: 'code', client_id: 'ac-app', redirect_uri: REDIRECT, scope: 'patient/*.rs', state: 'x', aud: s.fhir };
      const noPkce = await browser.fetch(`${s.base}/oauth2/authorize?${new URLSearchParams(params)}`);
      assert.ok(!(noPkce.headers.get('location') ?? '').includes('code='), 'no code without PKCE');
      const { challenge } = pkce();
      const plain = await browser.fetch(`${s.base}/oauth2/authorize?${new URLSearchParams({ ...params, code_challenge: challenge, code_challenge_method: 'plain' })}`);
      assert.ok(!(plain.headers.get('location') ?? '').includes('/interaction/'), 'plain PKCE is refused');
      const wrongAud = await browser.fetch(`${s.base}/oauth2/authorize?${new URLSearchParams({ ...params, aud: 'https://evil.example/fhir', code_challenge: challenge, code_challenge_method: 'S256' })}`);
      assert.equal(wrongAud.status, 400);

      await request('POST', `${s.base}/admin/users`, { username: 'lock@test', password: 'correct horse battery', fhirUser: 'Patient/ac-a' });
      const attempt = (password: string) => authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'ac-app', redirectUri: REDIRECT, scope: 'patient/*.rs', username: 'lock@test', password });
      for (let i = 0; i < 5; i++) await assert.rejects(attempt('wrong password!'));
      await assert.rejects(attempt('correct horse battery'), 'locked even with the right password');
    });

    it('refuses expired and wrong-audience tokens signed with the server\'s own key', async () => {
      const rows = await s.vigil.db.query<{ jwk: JWK | string }>(`SELECT jwk FROM auth_key WHERE use = 'sig'`);
      const jwk = typeof rows[0].jwk === 'string' ? (JSON.parse(rows[0].jwk) as JWK) : rows[0].jwk;
      const key = await importJWK(jwk, 'RS256');
      const sign = (payload: Record<string, unknown>, exp: number) => new SignJWT({ client_id: s.clientId, scope: 'system/*.*', ...payload })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid }).setIssuer(s.base).setJti('j').setIssuedAt(exp - 60).setExpirationTime(exp).sign(key);
      const now = Math.floor(Date.now() / 1000);
      const good = await sign({ aud: s.fhir }, now + 60);
      assert.equal((await request('GET', `${s.fhir}/Patient`, undefined, as(good))).status, 200, 'control: a well-formed token works');
      assert.equal((await request('GET', `${s.fhir}/Patient`, undefined, as(await sign({ aud: s.fhir }, now - 120)))).status, 401, 'expired');
      assert.equal((await request('GET', `${s.fhir}/Patient`, undefined, as(await sign({ aud: 'https://other.example/fhir' }, now + 60)))).status, 401, 'audience');
    });
  });
}
