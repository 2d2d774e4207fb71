import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectAsync } from 'mqtt';
import { WebSocket } from 'ws';
import { SECURITY_EVENT_SUBTYPE, SECURITY_EVENT_TYPE } from '../../src/ops/security-audit.ts';
import { clientCredentialsToken, freePort, request, useServer } from '../support.ts';
import { subscribe, waitFor } from '../subscriptions/helpers.ts';
import { auditSearch } from './audit-search.ts';
import { authorizationCodeFlow, Browser, pkce } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/callback';
const PASSWORD = 'correct horse battery';
const altIds = (e: any): string[] => e.agent.map((a: any) => a.altId);
/** What a proxy in front of Vigil sends: the address the client claimed, then the one the proxy saw. */
const PROXIED = { 'x-forwarded-for': '198.51.100.66, 203.0.113.9' };
const addresses = (e: any): string[] => e.agent.flatMap((a: any) => (a.network ? [a.network.address] : []));

/** A browser behind the proxy. */
class ProxiedBrowser extends Browser {
  override fetch(url: string, init: RequestInit = {}): Promise<Response> {
    return super.fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), ...PROXIED } });
  }
}

describe('AuditEvents for the admin API, the authorization server, websockets and MQTT (pglite)', async () => {
  const mqttPort = await freePort();
  const s = useServer('pglite', { VIGIL_TRUST_PROXY: 'on', MQTT_PORT: String(mqttPort), VIGIL_OUTBOX_POLL_MS: '200' });

  const audits = auditSearch(s);

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
    const browser = new ProxiedBrowser();
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
    const refusedGrant = await fetch(`${s.base}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${s.clientId}:wrong-secret`).toString('base64')}`, ...PROXIED },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.*' }),
    });
    assert.equal(refusedGrant.status, 401);
    const systemToken = await clientCredentialsToken(s.base, s.clientId, s.clientSecret);
    assert.equal((await form('introspect', { token: systemToken }, basic)).status, 200);
    assert.equal((await form('revoke', { token: systemToken }, basic)).status, 200);

    const oauth = `type=${SECURITY_EVENT_TYPE}|oauth`;
    const logins = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|login&altid=sa-alice`, (e) => e.length >= 2);
    assert.deepEqual(logins.map((e) => e.outcome).sort(), ['0', '4']);
    assert.ok(logins.every((e) => altIds(e).includes('sa-app')));
    // behind the trusted proxy, the address it saw (not the one the client claimed), as at the token endpoint
    assert.deepEqual(addresses(logins.find((e) => e.outcome === '4')), ['203.0.113.9']);
    assert.deepEqual(addresses(logins.find((e) => e.outcome === '0')), ['127.0.0.1']);
    const [consent] = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|consent&altid=sa-alice`);
    assert.equal(consent.outcome, '0');
    assert.equal(consent.entity[0].detail[0].valueString, 'launch/patient patient/*.rs');

    const [issued] = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|token&altid=sa-alice`);
    assert.deepEqual([issued.action, issued.outcome], ['C', '0']);
    assert.deepEqual(altIds(issued), ['sa-alice', 'sa-app']);
    assert.deepEqual(issued.entity[0].detail.map((d: any) => d.valueString), ['authorization_code', 'launch/patient patient/*.rs']);
    const refused = await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|token&outcome=4`);
    const invalidClient = refused.find((e) => e.outcomeDesc === 'invalid_client');
    assert.ok(invalidClient, JSON.stringify(refused));
    assert.deepEqual(addresses(invalidClient), ['203.0.113.9']);
    assert.equal((await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|introspection&altid=${s.clientId}`))[0].outcome, '0');
    assert.equal((await audits(`${oauth}&subtype=${SECURITY_EVENT_SUBTYPE}|revocation&altid=${s.clientId}`))[0].action, 'D');

    const all = JSON.stringify(await audits(oauth, (e) => e.length >= 6));
    for (const secret of [PASSWORD, 'not-the-password', 'wrong-secret', s.clientSecret, accessToken, systemToken, flow.body.id_token ?? accessToken]) {
      assert.ok(!all.includes(secret), `an AuditEvent carries a secret: ${secret.slice(0, 12)}…`);
    }
  });

  it('records websocket connections, bindings (refusals included) and disconnects, with whom a binding token was issued to, never the token', async () => {
    const sub = await subscribe(s.fhir, { criteria: 'Observation', channel: { type: 'websocket', payload: 'application/fhir+json' } });
    const issued = await request('POST', `${s.fhir}/Subscription/${sub.id}/$get-ws-binding-token`);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const token = issued.body.parameter.find((p: any) => p.name === 'token').valueString as string;
    const ws = new WebSocket(`${s.base.replace('http', 'ws')}/fhir/R4/ws`, { headers: { 'x-forwarded-for': '198.51.100.66, 203.0.113.20' } });
    const messages: string[] = [];
    ws.on('message', (data) => messages.push(data.toString()));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('bind-with-token not-a-token.Kg');
    ws.send('bind sa-no-such-subscription');
    await waitFor('refusals', () => messages.length >= 2);
    ws.send(`bind-with-token ${token}`);
    await waitFor('bound', () => messages.includes(`bound ${sub.id}`));
    ws.close();

    const websocket = `type=${SECURITY_EVENT_TYPE}|websocket&address=203.0.113.20`;
    const events = await audits(websocket, (e) => e.some((x) => x.subtype[0].code === 'disconnect'));
    const bySubtype = (code: string) => events.filter((e) => e.subtype[0].code === code);
    const [connected] = bySubtype('connect');
    assert.deepEqual([connected.outcome, altIds(connected)], ['0', [undefined]], 'nobody known yet');
    const connection = connected.entity[0].name;
    assert.ok(events.every((e) => e.entity[0].name === connection), 'one connection, named in each event');
    assert.equal((await audits(`entity-name=${connection}`, (e) => e.length === events.length)).length, 5);

    const tokenBinds = bySubtype('bind-with-token');
    const refused = tokenBinds.find((e) => e.outcome === '4');
    assert.deepEqual([refused.outcomeDesc, refused.entity.length], ['invalid or expired token', 1]);
    const bound = tokenBinds.find((e) => e.outcome === '0');
    assert.deepEqual(altIds(bound), [s.clientId], 'the client the token was issued to');
    assert.equal(bound.entity[1].what.reference, `Subscription/${sub.id}`);
    const [unknown] = bySubtype('bind');
    assert.deepEqual([unknown.outcome, unknown.entity[1].what.reference], ['4', 'Subscription/sa-no-such-subscription']);
    const [gone] = bySubtype('disconnect');
    assert.deepEqual([gone.outcome, altIds(gone), gone.entity[1].what.reference], ['0', [s.clientId], `Subscription/${sub.id}`]);
    assert.ok(events.every((e) => addresses(e)[0] === '203.0.113.20'));
    const text = JSON.stringify(events);
    assert.ok(!text.includes(token) && !text.includes(token.split('.')[0]), 'no binding token');
  });

  it('records MQTT device sessions and refused credentials, never the password', async () => {
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    const device = await connectAsync(url, { clientId: 'sa-mqtt-device', username: s.clientId, password: s.clientSecret, reconnectPeriod: 0 });
    await device.endAsync();
    await assert.rejects(connectAsync(url, { clientId: 'sa-mqtt-intruder', username: s.clientId, password: 'sa-mqtt-wrong-password', reconnectPeriod: 0 }), /Not authorized/);

    const mqtt = `type=${SECURITY_EVENT_TYPE}|mqtt`;
    const sessions = await audits(`${mqtt}&entity-name=sa-mqtt-device`, (e) => e.length >= 2);
    assert.deepEqual(sessions.map((e) => [e.subtype[0].code, e.outcome]).sort(), [['connect', '0'], ['disconnect', '0']]);
    assert.ok(sessions.every((e) => altIds(e)[0] === s.clientId && addresses(e)[0] === '127.0.0.1'), JSON.stringify(sessions));
    const [refused] = await audits(`${mqtt}&entity-name=sa-mqtt-intruder`);
    assert.deepEqual([refused.subtype[0].code, refused.outcome, refused.outcomeDesc, altIds(refused)], ['connect', '4', 'not authorized', [s.clientId]]);
    const text = JSON.stringify([...sessions, refused]);
    assert.ok(!text.includes(s.clientSecret) && !text.includes('sa-mqtt-wrong-password'), text);
  });
});
