import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { rotateKeys } from '../../src/auth/keys.ts';
import { REVOCATION_SYNC_MS } from '../../src/auth/revocation.ts';
import { loadConfig } from '../../src/config.ts';
import { startVigil, type Vigil } from '../../src/main.ts';
import { bootstrapEnv, clientCredentialsToken, freshPostgresDatabase } from '../support.ts';

/** Replicas of one deployment: servers behind one public URL, sharing a PostgreSQL database and nothing else. */
const PUBLIC_URL = 'http://vigil.test';
describe('replicas on one database: revocation and signing-key rotation (postgres)', () => {
  const env = bootstrapEnv();
  const replicas: Vigil[] = [];
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  const replica = async (extra: Record<string, string> = {}): Promise<Vigil> => {
    const vigil = await startVigil(loadConfig({ PORT: '0', LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', MQTT_PORT: '0', DATABASE_URL: database.url, VIGIL_BASE_URL: PUBLIC_URL, ...env, ...extra }));
    replicas.push(vigil);
    return vigil;
  };
  /** Where the load balancer would send a request: this replica's own port. */
  const at = (v: Vigil) => `http://127.0.0.1:${v.port}`;
  const token = (v: Vigil) => clientCredentialsToken(at(v), env.VIGIL_BOOTSTRAP_CLIENT_ID, env.VIGIL_BOOTSTRAP_CLIENT_SECRET);
  const status = async (v: Vigil, t: string) => (await fetch(`${at(v)}/fhir/R4/Patient?_count=1`, { headers: { authorization: `Bearer ${t}` } })).status;
  const kid = (t: string) => decodeProtectedHeader(t).kid;
  const published = async (v: Vigil) => ((await (await fetch(`${at(v)}/oauth2/jwks`)).json()) as { keys: { kid: string; d?: string }[] }).keys;
  let a: Vigil;

  before(async () => {
    database = await freshPostgresDatabase();
    a = await replica();
  });
  after(async () => {
    for (const v of replicas) await v.stop();
    await database?.drop();
  });

  it('refuses a token revoked on one replica at once there, and within the sync interval on another', async () => {
    const b = await replica();
    const t = await token(a);
    assert.equal(await status(b, t), 200, 'cached as valid by the other replica');
    const revoked = await fetch(`${at(a)}/oauth2/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${env.VIGIL_BOOTSTRAP_CLIENT_ID}:${env.VIGIL_BOOTSTRAP_CLIENT_SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ token: t }),
    });
    assert.equal(revoked.status, 200);
    assert.equal(await status(a, t), 401);
    const start = Date.now();
    while ((await status(b, t)) !== 401) {
      assert.ok(Date.now() - start < REVOCATION_SYNC_MS * 3, 'the other replica still accepts the revoked token');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it('rotates the signing key at the configured age, keeps verifying tokens signed with the previous one, and retires it later', async () => {
    const before = await token(a);
    const [first] = await published(a);
    assert.equal(kid(before), first.kid);
    assert.equal(first.d, undefined, 'only public keys are published');
    await a.db.query(`UPDATE auth_key SET created_at = now() - interval '31 days' WHERE use = 'sig'`);

    const patient = await replica({ VIGIL_KEY_ROTATION_DAYS: '60' });
    assert.deepEqual((await published(patient)).map((k) => k.kid), [first.kid], 'not due at 60 days');

    const rotated = await replica();
    const keys = (await published(rotated)).map((k) => k.kid);
    assert.equal(keys.length, 2);
    assert.equal(keys[1], first.kid, 'the previous key stays published');
    const after = await token(rotated);
    assert.equal(kid(after), keys[0], 'the new key signs');
    assert.equal(await status(rotated, before), 200, 'a token signed with the previous key still verifies');
    assert.equal(await status(a, after), 200, 'a replica that has not seen the new key yet picks it up');
    assert.deepEqual((await published(a)).map((k) => k.kid), keys);
    assert.equal(kid(await token(a)), keys[0], 'and signs with it');

    // once the previous key was superseded longer ago than any token lives, it goes
    await a.db.query(`UPDATE auth_key SET created_at = now() - interval '2 hours' WHERE kid = $1`, [keys[0]]);
    await rotateKeys(a.db, 30 * 24 * 3600);
    const later = await replica();
    assert.deepEqual((await published(later)).map((k) => k.kid), [keys[0]]);
    assert.equal(await status(later, before), 401, 'its tokens no longer verify');
    assert.equal(await status(later, after), 200);
  });
});
