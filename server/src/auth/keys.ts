import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type JWK, type JWSHeaderParameters } from 'jose';
import type { Database, Sql } from '../store/database.ts';

/** How often each replica looks for a due rotation and for keys another replica added. */
const KEY_CHECK_MS = 60_000;
/**
 * How long a superseded key stays published: the longest lifetime of what it signed (access and id
 * tokens, one hour) plus the time replicas may keep signing with it before they notice its successor.
 */
const RETIRE_AFTER_SECONDS = 3600 + (2 * KEY_CHECK_MS) / 1000;
/** Tokens naming an unknown key make the ring re-read the database, at most this often. */
const UNKNOWN_KID_RELOAD_MS = 1_000;
const ALG = 'RS256';
const ROTATION_LOCK = 'vigil:auth_key:rotation';

/**
 * The signing keys every replica shares, in the database (`auth_key`): the newest signs, all verify.
 * A key older than the rotation age gets a successor (one replica makes it, under an advisory lock);
 * a superseded key is deleted once everything it signed has expired. Replicas pick up a successor
 * on their next check, or at once when a token signed with it arrives.
 */
export class KeyRing {
  readonly #db: Database;
  readonly #rotationSeconds: number;
  readonly #listeners: (() => void)[] = [];
  #signing: JWK[] = [];
  #cookie: string[] = [];
  #verifying = new Map<string, CryptoKey>();
  #loading?: Promise<boolean>;
  #reloading?: Promise<boolean>;
  #loadedAt = 0;
  #timer?: NodeJS.Timeout;

  private constructor(db: Database, rotationDays: number) {
    this.#db = db;
    this.#rotationSeconds = rotationDays * 24 * 3600;
  }

  static async open(db: Database, rotationDays: number): Promise<KeyRing> {
    const ring = new KeyRing(db, rotationDays);
    await ring.#ensureCookieSecret();
    await ring.refresh();
    return ring;
  }

  /** Private signing JWKs, newest first. */
  get signing(): JWK[] {
    return this.#signing;
  }

  /** Secrets for oidc-provider's signed cookies, newest first. */
  get cookie(): string[] {
    return this.#cookie;
  }

  /** Called after the key set changed (a rotation here or on another replica, or a retirement). */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  start(onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => this.refresh().catch(onError), KEY_CHECK_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Rotates if due, retires expired keys, re-reads the set; true when it changed. */
  refresh(): Promise<boolean> {
    return this.#once(async () => {
      await rotateKeys(this.#db, this.#rotationSeconds);
      return this.#load();
    });
  }

  /** For jose's jwtVerify: the public key a token names, re-reading the database for a kid not seen yet. */
  readonly verificationKey = async (header: JWSHeaderParameters): Promise<CryptoKey> => {
    const kid = header.kid ?? '';
    if (!this.#verifying.has(kid)) await this.#reloadSoon();
    const key = this.#verifying.get(kid);
    if (!key) throw new Error('no key with this kid');
    return key;
  };

  /** One re-read for all the tokens that wait on it, at most once per UNKNOWN_KID_RELOAD_MS (forged kids cost little). */
  #reloadSoon(): Promise<boolean> {
    this.#reloading ??= (async () => {
      const wait = this.#loadedAt + UNKNOWN_KID_RELOAD_MS - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      return this.#once(() => this.#load());
    })().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  #once(work: () => Promise<boolean>): Promise<boolean> {
    this.#loading ??= work().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #load(): Promise<boolean> {
    const rows = await this.#db.query<{ jwk: JWK | string }>(`SELECT jwk FROM auth_key WHERE use = 'sig' ORDER BY created_at DESC, kid`);
    const signing = rows.map((r) => (typeof r.jwk === 'string' ? (JSON.parse(r.jwk) as JWK) : r.jwk));
    this.#loadedAt = Date.now();
    const kids = (keys: JWK[]): string => keys.map((k) => k.kid).join(' ');
    if (kids(signing) === kids(this.#signing)) return false;
    const verifying = new Map<string, CryptoKey>();
    for (const jwk of signing) verifying.set(jwk.kid as string, (await importJWK(publicJwk(jwk), ALG)) as CryptoKey);
    this.#signing = signing;
    this.#verifying = verifying;
    for (const listener of this.#listeners) listener();
    return true;
  }

  async #ensureCookieSecret(): Promise<void> {
    const select = () => this.#db.query<{ jwk: { k: string } | string }>(`SELECT jwk FROM auth_key WHERE use = 'cookie' ORDER BY created_at DESC, kid`);
    let rows = await select();
    if (rows.length === 0) {
      const secret = randomBytes(32).toString('base64url');
      await this.#db.query('INSERT INTO auth_key (kid, use, jwk) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING', [`cookie-${Date.now()}`, 'cookie', JSON.stringify({ k: secret })]);
      rows = await select();
    }
    this.#cookie = rows.map((r) => (typeof r.jwk === 'string' ? (JSON.parse(r.jwk) as { k: string }) : r.jwk).k);
  }
}

/**
 * Adds a signing key when there is none or the newest is older than `rotationSeconds`, and deletes
 * keys superseded more than RETIRE_AFTER_SECONDS ago. Safe to run on every replica at once.
 */
export async function rotateKeys(db: Database, rotationSeconds: number): Promise<void> {
  const due = async (sql: Sql): Promise<boolean> => {
    const rows = await sql.query<{ due: boolean }>(
      `SELECT coalesce(max(created_at) <= now() - make_interval(secs => $1), true) AS due FROM auth_key WHERE use = 'sig'`,
      [rotationSeconds],
    );
    return rows[0].due;
  };
  // generating an RSA key takes a while: only when a rotation looks due, and outside the lock
  const jwk = (await due(db)) ? await newSigningKey() : undefined;
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [ROTATION_LOCK]);
    if (jwk && (await due(tx))) {
      await tx.query('INSERT INTO auth_key (kid, use, jwk) VALUES ($1, $2, $3::jsonb)', [jwk.kid, 'sig', JSON.stringify(jwk)]);
    }
    await tx.query(
      `DELETE FROM auth_key k WHERE k.use = 'sig' AND EXISTS (
         SELECT 1 FROM auth_key n WHERE n.use = 'sig' AND n.created_at > k.created_at AND n.created_at <= now() - make_interval(secs => $1))`,
      [RETIRE_AFTER_SECONDS],
    );
  });
}

async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair(ALG, { modulusLength: 2048, extractable: true });
  return { ...(await exportJWK(privateKey)), alg: ALG, use: 'sig', kid: randomBytes(12).toString('base64url') };
}

/** The public half of a private JWK. */
function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
  return pub;
}
