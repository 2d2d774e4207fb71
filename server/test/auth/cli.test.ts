import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig } from '../../src/config.ts';
import { startVigil, type Vigil } from '../../src/main.ts';
import { openPGlite } from '../../src/store/pglite.ts';
import { bootstrapEnv, bootstrapToken, DRIVERS, freshPostgresDatabase, request } from '../support.ts';
import { pgliteSnapshot } from '../templates.ts';
import { authorizationCodeFlow } from './smart-flow.ts';

const REDIRECT = 'http://localhost:9/cli-callback';
const CLI = new URL('../../../scripts/vigil.ts', import.meta.url).pathname;

for (const driver of DRIVERS) {
  describe(`npm run vigil: users and clients from the command line (${driver})`, () => {
    const database: Record<string, string> = {};
    let cleanup: () => Promise<void>;
    let vigil: Vigil | undefined;
    const cli = async (...args: string[]) => {
      const env = { ...process.env, DATABASE_URL: '', VIGIL_DATA_DIR: '', VIGIL_USER_PASSWORD: '', VIGIL_CLIENT_SECRET: '', ...database };
      return promisify(execFile)(process.execPath, [CLI, ...args], { env }).then(
        ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
        (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
      );
    };

    before(async () => {
      if (driver === 'postgres') {
        const db = await freshPostgresDatabase();
        database.DATABASE_URL = db.url;
        cleanup = db.drop;
      } else {
        const dir = await mkdtemp(join(tmpdir(), 'vigil-cli-'));
        await (await openPGlite(dir, await pgliteSnapshot())).close(); // a migrated data directory
        database.VIGIL_DATA_DIR = dir;
        cleanup = () => rm(dir, { recursive: true, force: true });
      }
    });
    after(async () => {
      await vigil?.stop();
      await cleanup?.();
    });

    it('adds users and clients, lists them, and refuses bad input like the admin API', async () => {
      const user = await cli('users', 'add', '--username', 'cli-doc@test', '--password', 'correct horse battery', '--fhir-user', 'Practitioner/cli-doc');
      assert.equal(user.code, 0, user.stderr);
      const client = await cli('clients', 'add', '--client-id', 'cli-app', '--scopes', 'user/*.rs', '--redirect-uri', REDIRECT, '--name', 'CLI app');
      assert.equal(client.code, 0, client.stderr);
      assert.match(client.stdout, /cli-app saved \(none; grants: authorization_code, refresh_token\)/);
      assert.equal((await cli('users', 'list')).stdout, 'cli-doc@test\tPractitioner/cli-doc\n');
      assert.match((await cli('clients', 'list')).stdout, /^cli-app\tnone\tuser\/\*\.rs\thttp:\/\/localhost:9\/cli-callback$/m);

      const short = await cli('users', 'add', '--username', 'x@test', '--password', 'short', '--fhir-user', 'Practitioner/x');
      assert.equal(short.code, 1);
      assert.match(short.stderr, /at least 8 characters/);
      const badScope = await cli('clients', 'add', '--client-id', 'x', '--scopes', 'everything', '--secret', 'long-enough-secret-1234');
      assert.equal(badScope.code, 1);
      assert.match(badScope.stderr, /not a SMART resource scope/);
      assert.equal((await cli('users', 'delete')).code, 2, 'unknown command');
      assert.equal((await cli('users', 'list')).stdout, 'cli-doc@test\tPractitioner/cli-doc\n', 'nothing half-written');
    });

    it('gives a Vigil started on that database a user who signs in through the app it registered', async () => {
      const env = bootstrapEnv();
      vigil = await startVigil(loadConfig({ PORT: '0', LOG_LEVEL: 'warn', VIGIL_DEMO: 'off', MQTT_PORT: '0', ...database, ...env }));
      const base = vigil.config.baseUrl;
      await bootstrapToken(vigil);
      assert.equal((await request('PUT', `${base}/fhir/R4/Practitioner/cli-doc`, { resourceType: 'Practitioner', id: 'cli-doc' })).status, 201);
      const res = await authorizationCodeFlow({ base, fhir: `${base}/fhir/R4`, clientId: 'cli-app', redirectUri: REDIRECT, scope: 'openid fhirUser user/*.rs', username: 'cli-doc@test', password: 'correct horse battery' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((await request('GET', `${base}/fhir/R4/Practitioner/cli-doc`, undefined, { authorization: `Bearer ${res.body.access_token}` })).status, 200);
    });
  });
}
