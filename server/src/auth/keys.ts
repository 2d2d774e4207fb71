import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Database } from '../store/database.ts';

export interface AuthKeys {
  /** Private signing JWKs, newest first: the first signs, all verify. */
  signing: JWK[];
  /** Secrets for oidc-provider's signed cookies, newest first. */
  cookie: string[];
}

/**
 * Signing keys live in the database so that every replica signs and verifies with the same ones.
 * The first start generates them; concurrent first starts race harmlessly (ON CONFLICT) and all
 * read back the same rows.
 */
export async function loadKeys(db: Database): Promise<AuthKeys> {
  let rows = await select(db);
  if (!rows.some((r) => r.use === 'sig')) {
    const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: randomBytes(12).toString('base64url') };
    await db.query('INSERT INTO auth_key (kid, use, jwk) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING', [jwk.kid, 'sig', JSON.stringify(jwk)]);
  }
  if (!rows.some((r) => r.use === 'cookie')) {
    const secret = randomBytes(32).toString('base64url');
    await db.query('INSERT INTO auth_key (kid, use, jwk) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING', [`cookie-${Date.now()}`, 'cookie', JSON.stringify({ k: secret })]);
  }
  rows = await select(db);
  return {
    signing: rows.filter((r) => r.use === 'sig').map((r) => r.jwk),
    cookie: rows.filter((r) => r.use === 'cookie').map((r) => r.jwk.k as string),
  };
}

async function select(db: Database): Promise<{ use: string; jwk: JWK }[]> {
  const rows = await db.query<{ use: string; jwk: JWK | string }>('SELECT use, jwk FROM auth_key ORDER BY created_at DESC, kid');
  return rows.map((r) => ({ use: r.use, jwk: typeof r.jwk === 'string' ? (JSON.parse(r.jwk) as JWK) : r.jwk }));
}

/** The public half of a private JWK. */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}
