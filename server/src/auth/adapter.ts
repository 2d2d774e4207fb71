import { errors } from 'oidc-provider';
import type { Database } from '../store/database.ts';

type Payload = Record<string, unknown> & { grantId?: string; uid?: string; userCode?: string; consumed?: number };

/**
 * oidc-provider's storage adapter contract over one table (`oidc_payload`): every model (Session,
 * Grant, AuthorizationCode, RefreshToken, Client, ReplayDetection, …) is a JSON payload keyed by
 * (kind, id), with the grant id, uid and user code lifted out for the lookups the contract needs.
 * Expired rows are invisible at once and deleted lazily.
 */
export function dbAdapter(db: Database) {
  return class DbAdapter {
    readonly kind: string;

    constructor(kind: string) {
      this.kind = kind;
    }

    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      const expires = expiresIn ? new Date(Date.now() + expiresIn * 1000).toISOString() : null;
      const values = [this.kind, id, JSON.stringify(payload), payload.grantId ?? null, payload.uid ?? null, payload.userCode ?? null, expires];
      if (this.kind === 'ReplayDetection') {
        // A client assertion's jti is single use across every replica: the insert is the check.
        const rows = await db.query(
          `INSERT INTO oidc_payload (kind, id, payload, grant_id, uid, user_code, expires_at) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
           ON CONFLICT (kind, id) DO UPDATE SET payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at
           WHERE oidc_payload.expires_at < now() RETURNING id`,
          values,
        );
        if (rows.length === 0) throw new errors.InvalidClientAuth('client assertion tokens must only be used once');
        return;
      }
      await db.query(
        `INSERT INTO oidc_payload (kind, id, payload, grant_id, uid, user_code, expires_at) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
         ON CONFLICT (kind, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, uid = EXCLUDED.uid,
         user_code = EXCLUDED.user_code, expires_at = EXCLUDED.expires_at, consumed_at = NULL`,
        values,
      );
    }

    find(id: string): Promise<Payload | undefined> {
      return this.#one('id = $2', id);
    }

    findByUid(uid: string): Promise<Payload | undefined> {
      return this.#one('uid = $2', uid);
    }

    findByUserCode(userCode: string): Promise<Payload | undefined> {
      return this.#one('user_code = $2', userCode);
    }

    async consume(id: string): Promise<void> {
      await db.query('UPDATE oidc_payload SET consumed_at = now() WHERE kind = $1 AND id = $2', [this.kind, id]);
    }

    async destroy(id: string): Promise<void> {
      await db.query('DELETE FROM oidc_payload WHERE kind = $1 AND id = $2', [this.kind, id]);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await db.query('DELETE FROM oidc_payload WHERE grant_id = $1', [grantId]);
    }

    async #one(where: string, value: string): Promise<Payload | undefined> {
      const rows = await db.query<{ payload: Payload | string; consumed: boolean }>(
        `SELECT payload, consumed_at IS NOT NULL AS consumed FROM oidc_payload
         WHERE kind = $1 AND ${where} AND (expires_at IS NULL OR expires_at > now())`,
        [this.kind, value],
      );
      const row = rows[0];
      if (!row) return undefined;
      const payload = typeof row.payload === 'string' ? (JSON.parse(row.payload) as Payload) : row.payload;
      return row.consumed ? { ...payload, consumed: Math.floor(Date.now() / 1000) } : payload;
    }
  };
}

/** Drops expired payloads; called now and then, never on the request path. */
export async function purgeExpired(db: Database): Promise<void> {
  await db.query('DELETE FROM oidc_payload WHERE expires_at < now()');
}
