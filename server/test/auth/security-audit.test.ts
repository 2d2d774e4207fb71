import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SECURITY_EVENT_SUBTYPE, SECURITY_EVENT_TYPE } from '../../src/ops/security-audit.ts';
import { clientCredentialsToken, request, useServer } from '../support.ts';
import { waitFor } from '../subscriptions/helpers.ts';
import { authorizationCodeFlow, Browser, pkce } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'correct horse battery';
const altIds = (e: any): string[] => e.agent.map((a: any) => a.altId);

describe('AuditEvents for the admin API and the authorization server (pglite)', () => {
  const s = useServer('pglite');

  /** AuditEvents matching `query` (as an administrator), once `ready` holds for them. */
  async function audits(query: string, ready: (events: any[]) => boolean = (e) => e.length > 0): Promise<any[]> {
    return waitFor(`AuditEvent?${query}`, async () => {
      await s.vigil.audit.flush();
      const res = await request('GET', `${s.fhir}/AuditEvent?${query}&_count=1000`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const events = (res.body.entry ?? []).map((e: any) => e.resource);
      return ready(events) && events;
    }, 10_000);
  }

  it('records who created which user or client, refusals included, never the password or secret', async () => {
    assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'sa-user', password: PASSWORD, fhirUser: 'Patient/sa-p' })).status, 201);
    assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'sa-conf', secret: 'sa-very-secret-value', scopes: 'system/Patient.rs' })).status, 201);
    assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'sa-intruder', password: PASSWORD, fhirUser: 'Patient/sa-p' }, { authorization: '' })).status, 401);

    const [user] = await audits('entity-name=sa-user');
    assert.equal(user.type.code, 'rest');
    assert.deepEqual([user.action, user.outcome, user.outcomeDesc], ['C', '0', '201 Created']);
    assert.deepEqual(altIds(user), [s.clientId]);
    assert.equal(user.entity[0].description, '/admin/users');
    const [client] = await audits('entity-name=sa-conf');
    assert.equal(client.entity[0].description, '/admin/clients');
    // refused before its body is read: the event names the endpoint, not the user
    const refused = (await audits('outcome=4&action=C', (e) => e.some((x) => x.entity[0].description === '/admin/users'))).find((x) => x.entity[0].description === '/admin/users');
    assert.deepEqual([refused.outcome, refused.outcomeDesc, refused.agent[0].who.display], ['4', '401 Unauthorized', 'unauthenticated']);
    const text = JSON.stringify([user, client, refused]);
    assert.ok(!text.includes(PASSWORD) && !text.includes('sa-very-secret-value'), text);
  });

  it('records tokens issued and refused, sign-in success and failure, consent, introspection and revocation, without any secret', async () => {
    assert.equal((await request('POST', `${s.base}/admin/users`, { username: 'sa-alice', password: PASSWORD, fhirUser: 'Patient/sa-p' })).status, 201);
    assert.equal((await request('POST', `${s.base}/admin/clients`, { client_id: 'sa-app', redirect_uris: [REDIRECT], scopes: 'patient/*.rs' })).status, 201);
    await request('PUT', `${s.fhir}/Patient/sa-p`, { resourceType: 'Patient', id: 'sa-p' });

    // a failed sign-in, then the whole flow
    const browser = new Browser();
    const authorizeUrl = `${s.base}/oauth2/authorize?${new URLSearchParams({ response_type: 'code', client_id: 'sa-app', redirect_uri: REDIRECT, scope: 'patient/*.rs', state: 's', aud: s.fhir, code_challenge: pkce().challenge, code_challenge_method: 'S256' })}`;
    const page = await browser.follow(authorizeUrl, s.base);
    const wrong = await browser.submit(page.url, await page.res.text(), /\/login/, { username: 'sa-alice', password: 'not-the-password' }, s.base);
    assert.equal(wrong.res.status, 401);
    const flow = await authorizationCodeFlow({ base: s.base, fhir: s.fhir, clientId: 'sa-app', redirectUri: REDIRECT, scope: 'launch/patient patient/*.rs', username: 'sa-alice', password: PASSWORD });
    assert.equal(flow.status, 200, JSON.stringify(flow.body));
    const accessToken = flow.body.access_token as string;

    const basic = `Basic ${Buffer.from(`${s.clientId}:${s.clientSecret}`).toString('base64')}`;
    const form = (path: string, body: Record<string, string>, authorization?: string) => fetch(`${s.base}/oauth2/${path}`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) }, body: new URLSearchParams(body),
    });
    assert.equal((await form('token', { grant_type: 'client_credentials', scope: 'system/*.*' }, `Basic ${Buffer.from(`${s.clientId}:wrong-secret`).toString('base64')}`)).status, 401);
    const systemToken = await clientCredentialsToken(s.base, s.clientId, s.clientSecret);
    assert.equal((await form('introspect', { token: systemToken }, basic)).status, 200);
    assert.equal((await form('revoke', { token: systemToken }, basic)).status, 200);

    const oauth = `type=${SECURITY_EVENT_TYPE}|oauth`;
    const logins = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|login&altid=sa-alice`, (e) => e.length >= 2);
    assert.deepEqual(logins.map((e) => e.outcome).sort(), ['0', '4']);
    assert.ok(logins.every((e) => e.agent[0].network.address === '127.0.0.1' && altIds(e).includes('sa-app')));
    const [consent] = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|consent&altid=sa-alice`);
    assert.equal(consent.outcome, '0');
    assert.equal(consent.entity[0].detail[0].valueString, 'launch/patient patient/*.rs');

    const [issued] = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|token&altid=sa-alice`);
    assert.deepEqual([issued.action, issued.outcome], ['C', '0']);
    assert.deepEqual(altIds(issued), ['sa-alice', 'sa-app']);
    assert.deepEqual(issued.entity[0].detail.map((d: any) => d.valueString), ['authorization_code', 'launch/patient patient/*.rs']);
    const refused = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|token&outcome=4`);
    assert.ok(refused.some((e) => e.outcomeDesc === 'invalid_client'), JSON.stringify(refused));
    assert.equal((await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|introspection&altid=${s.clientId}`))[0].outcome, '0');
    assert.equal((await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|revocation&altid=${s.clientId}`))[0].action, 'D');

    const all = JSON.stringify(await audits(oauth, (e) => e.length >= 6));
    for (const secret of [PASSWORD, 'not-the-password', 'wrong-secret', s.clientSecret, accessToken, systemToken, flow.body.id_token ?? accessToken]) {
      assert.ok(!all.includes(secret), `an AuditEvent carries a secret: ${secret.slice(0, 12)}…`);
    }
  });
});
