// npm run vigil -- users add|list …, clients add|list …: user and client administration on Vigil's database
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { listClients, putClient, type ClientRegistration } from '../server/src/auth/clients.ts';
import { UserStore } from '../server/src/auth/users.ts';
import { loadConfig } from '../server/src/config.ts';
import { openDatabase, type Database } from '../server/src/store/database.ts';
import { migrate } from '../server/src/store/migrate.ts';

const USAGE = `Administers Vigil's users and OAuth clients, directly in its database: $DATABASE_URL, or the
embedded data directory ($VIGIL_DATA_DIR, default ./.vigil/data; stop Vigil first, PGlite has one user).
The same checks as the admin API (POST /admin/users, POST /admin/clients) apply.

  users add --username NAME --password PASSWORD --fhir-user Practitioner/ID|Patient/ID
            (the password may come from $VIGIL_USER_PASSWORD instead, to keep it out of shell history)
  users list
  clients add --client-id ID --scopes "system/*.rs …" [--redirect-uri URI]… [--name NAME] [--launch-uri URI]
            [--secret SECRET | --jwks FILE | --jwks-uri URL]
            (no secret and no keys: a public client, which needs a redirect URI; the secret may come
            from $VIGIL_CLIENT_SECRET instead)
  clients list`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    username: { type: 'string' },
    password: { type: 'string', default: process.env.VIGIL_USER_PASSWORD },
    'fhir-user': { type: 'string' },
    'client-id': { type: 'string' },
    scopes: { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    name: { type: 'string' },
    'launch-uri': { type: 'string' },
    secret: { type: 'string', default: process.env.VIGIL_CLIENT_SECRET },
    jwks: { type: 'string' },
    'jwks-uri': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function required(name: keyof typeof values): string {
  const value = values[name];
  if (typeof value !== 'string' || !value) fail(`--${name} is required`);
  return value;
}

const commands: Record<string, (db: Database) => Promise<void>> = {
  async 'users add'(db) {
    const user = await new UserStore(db).put(required('username'), required('password'), required('fhir-user'));
    console.log(`user ${user.username} (${user.fhirUser}) saved`);
  },
  async 'users list'(db) {
    for (const u of await new UserStore(db).list()) console.log([u.username, u.fhirUser, u.locked ? 'locked' : ''].join('\t').trimEnd());
  },
  async 'clients add'(db) {
    const registration: ClientRegistration = {
      client_id: required('client-id'),
      scopes: required('scopes'),
      ...(values['redirect-uri'] ? { redirect_uris: values['redirect-uri'] } : {}),
      ...(values.name ? { client_name: values.name } : {}),
      ...(values['launch-uri'] ? { launch_uri: values['launch-uri'] } : {}),
      ...(values.jwks ? { jwks: JSON.parse(readFileSync(values.jwks, 'utf8')) as ClientRegistration['jwks'] } : {}),
      ...(values['jwks-uri'] ? { jwks_uri: values['jwks-uri'] } : {}),
      ...(values.secret && !values.jwks && !values['jwks-uri'] ? { secret: values.secret } : {}),
    };
    const metadata = await putClient(db, registration);
    console.log(`client ${registration.client_id} saved (${metadata.token_endpoint_auth_method}; grants: ${(metadata.grant_types as string[]).join(', ') || 'none'})`);
  },
  async 'clients list'(db) {
    for (const c of await listClients(db)) console.log([c.client_id, c.auth, c.scopes, c.redirect_uris.join(' ')].join('\t').trimEnd());
  },
};

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const command = commands[positionals.slice(0, 2).join(' ')];
if (!command || positionals.length > 2) fail(`unknown command "${positionals.join(' ')}"`);
const db = await openDatabase(loadConfig());
try {
  await migrate(db);
  await command(db);
} catch (err) {
  process.exitCode = 1;
  console.error(err instanceof Error ? err.message : String(err));
} finally {
  await db.close();
}
