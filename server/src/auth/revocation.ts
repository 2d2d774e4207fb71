import type { Database } from '../store/database.ts';

/** How often a replica reads the revocations other replicas made. */
export const REVOCATION_SYNC_MS = 1_000;
const KIND = 'RevokedToken';

/**
 * Revoked JWT access tokens (by `jti`) and revoked grants (by id, covering every access token issued
 * from them), each kept until what it covers would have expired anyway. The list lives in the
 * database (`oidc_payload`, kind RevokedToken) for every replica and is mirrored in memory, so the
 * check on each request is a Map lookup: the replica that revokes refuses the token at once, the
 * others within REVOCATION_SYNC_MS.
 */
export class RevocationList {
  readonly #db: Database;
  /** id → when the entry may be forgotten (ms). */
  readonly #revoked = new Map<string, number>();
  #timer?: NodeJS.Timeout;

  constructor(db: Database) {
    this.#db = db;
  }

  async revoke(id: string, untilSeconds: number): Promise<void> {
    const until = untilSeconds * 1000;
    if (until <= Date.now()) return;
    this.#revoked.set(id, until);
    await this.#db.query(
      `INSERT INTO oidc_payload (kind, id, payload, expires_at) VALUES ($1, $2, '{}'::jsonb, to_timestamp($3))
       ON CONFLICT (kind, id) DO UPDATE SET expires_at = greatest(oidc_payload.expires_at, EXCLUDED.expires_at)`,
      [KIND, id, untilSeconds],
    );
  }

  has(id: string | undefined): boolean {
    if (id === undefined) return false;
    const until = this.#revoked.get(id);
    return until !== undefined && until > Date.now();
  }

  /** Reads every live revocation (there are few: each lasts at most a token lifetime) and forgets expired ones. */
  async sync(): Promise<void> {
    const rows = await this.#db.query<{ id: string; until: number }>(
      `SELECT id, extract(epoch FROM expires_at)::float8 * 1000 AS until FROM oidc_payload WHERE kind = $1 AND expires_at > now()`,
      [KIND],
    );
    for (const { id, until } of rows) this.#revoked.set(id, Number(until));
    const now = Date.now();
    for (const [id, until] of this.#revoked) if (until <= now) this.#revoked.delete(id);
  }

  start(onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => this.sync().catch(onError), REVOCATION_SYNC_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
