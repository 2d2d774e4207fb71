import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { tokenVerifier } from '../server/src/auth/bearer.ts';
import { CareTeamPatients } from '../server/src/auth/care-team.ts';
import { KeyRing } from '../server/src/auth/keys.ts';
import { RevocationList } from '../server/src/auth/revocation.ts';
import { TrustedIssuers } from '../server/src/auth/trusted-issuers.ts';
import { openDatabase } from '../server/src/store/database.ts';
import { fmt, http, load, percentiles, recreateDatabase, startServer } from './support.ts';

/**
 * `npm run bench -- tokens [--grants N] [--concurrency N] [--verifications N]`: the authorization
 * server's token endpoint (client_credentials with client_secret_basic, then with a private_key_jwt
 * assertion, as SMART backend services send) in grants/s, and what checking a bearer token costs
 * each FHIR request: the verifier the API runs, on a token already seen (the steady state) and on a
 * first sight (RS256 signature check).
 */
export async function main(args: string[]): Promise<void> {
  const opt = (name: string, fallback: number): number => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const grants = opt('grants', 3000);
  const concurrency = opt('concurrency', 16);
  const verifications = opt('verifications', 200_000);
  const url = await recreateDatabase('vigil_bench_tokens');
  // rate limits off: the point is the endpoint's own throughput
  const server = await startServer(url, 8191, { VIGIL_RATE_LIMIT_TOKEN: '0' });
  const tokenUrl = `${server.base}/oauth2/token`;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const post = (body: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(tokenUrl, { method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const grant = async (body: string, headers?: Record<string, string>) => {
    const res = await post(body, headers);
    if (res.status !== 200) throw new Error(`token: ${res.status} ${res.body}`);
    return (JSON.parse(res.body) as { access_token: string }).access_token;
  };

  try {
    console.log(`bench tokens: ${fmt(grants)} grants per method, ${concurrency} in flight; ${fmt(verifications)} verifications`);
    const secret = randomBytes(24).toString('base64url');
    const { privateKey, publicKey } = await generateKeyPair('ES384', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), alg: 'ES384', kid: 'bench' };
    for (const client of [{ client_id: 'bench-secret', secret, scopes: 'system/*.*' }, { client_id: 'bench-jwt', jwks: { keys: [jwk] }, scopes: 'system/*.*' }]) {
      const res = await http('POST', `${server.base}/admin/clients`, JSON.stringify(client));
      if (res.status !== 201) throw new Error(`registering ${client.client_id}: ${res.status} ${res.body}`);
    }
    const basic = { authorization: `Basic ${Buffer.from(`bench-secret:${secret}`).toString('base64')}` };
    const secretBody = 'grant_type=client_credentials&scope=system/*.*';
    await load(200, concurrency, () => grant(secretBody, basic).then(() => undefined)); // warm-up

    const cpu = serverCpu(server.child.pid);
    const bySecret = await load(grants, concurrency, () => grant(secretBody, basic).then(() => undefined));
    report('client_credentials, client_secret_basic', bySecret, cpu(), grants);

    // assertions are signed before the clock starts: the figure is the server's, not the bench's
    const assertions = await Promise.all(Array.from({ length: grants }, () =>
      new SignJWT({}).setProtectedHeader({ alg: 'ES384', kid: 'bench', typ: 'JWT' })
        .setIssuer('bench-jwt').setSubject('bench-jwt').setAudience(tokenUrl).setJti(randomUUID()).setIssuedAt().setExpirationTime('4m')
        .sign(privateKey)));
    const cpuJwt = serverCpu(server.child.pid);
    const byAssertion = await load(grants, concurrency, (i) => grant(new URLSearchParams({
      grant_type: 'client_credentials', scope: 'system/*.*',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertions[i],
    }).toString()).then(() => undefined));
    report('client_credentials, private_key_jwt (ES384, single-use jti)', byAssertion, cpuJwt(), grants);

    // The API's verifier, in this process, against the server's keys in the same database.
    const token = await grant(secretBody, basic);
    const issuer = decodeJwt(token).iss as string;
    const db = await openDatabase({ databaseUrl: url, dataDir: '' });
    const keys = await KeyRing.open(db, 30);
    const { verify } = tokenVerifier({
      issuer, audience: `${issuer}/fhir/R4`, keys, revocations: new RevocationList(db), trusted: new TrustedIssuers([], `${issuer}/fhir/R4`), careTeams: new CareTeamPatients(db, issuer),
    });
    const authorization = `Bearer ${token}`;
    await verify(authorization);
    const t0 = performance.now();
    for (let i = 0; i < verifications; i++) await verify(authorization);
    const seen = (performance.now() - t0) / verifications;
    const fresh = await Promise.all(Array.from({ length: 200 }, () => grant(secretBody, basic)));
    const t1 = performance.now();
    for (const t of fresh) await verify(`Bearer ${t}`);
    const firstSight = (performance.now() - t1) / fresh.length;
    console.log(`bearer verification per request: ${fmt(seen * 1000, 2)} µs (token seen before; target < 200 µs); first sight of a token: ${fmt(firstSight * 1000, 1)} µs (RS256 signature)`);
    keys.stop();
    await db.close();
  } finally {
    agent.destroy();
    await server.stop();
  }
}

/**
 * The server process's CPU time from now on (Linux /proc), so that the figure per grant holds on a
 * machine shared with other work: 1000 / (CPU ms per grant) is what one core sustains.
 */
function serverCpu(pid: number | undefined): () => number | undefined {
  const stat = `/proc/${pid}/stat`;
  const read = (): number | undefined => {
    if (!pid || !existsSync(stat)) return undefined;
    const fields = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in ticks of 1/100 s
  };
  const start = read();
  return () => {
    const end = read();
    return start === undefined || end === undefined ? undefined : end - start;
  };
}

function report(what: string, result: { perSecond: number; latencies: number[] }, cpuMs: number | undefined, count: number): void {
  const p = percentiles(result.latencies);
  const perGrant = cpuMs === undefined ? '' : `; server CPU ${fmt(cpuMs / count, 2)} ms per grant = ${fmt((1000 * count) / cpuMs)} grants/s per core`;
  console.log(`${what}: ${fmt(result.perSecond)} grants/s (target ≥ 500/s); latency p50 ${fmt(p.p50, 1)} ms, p99 ${fmt(p.p99, 1)} ms${perGrant}`);
}
