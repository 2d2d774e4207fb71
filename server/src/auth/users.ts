import type { Database } from '../store/database.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

export interface User {
  username: string;
  /** `Practitioner/<id>` or `Patient/<id>`. */
  fhirUser: string;
}

/** Failed logins in a row before the account locks, and for how long. */
export const MAX_FAILED_LOGINS = 5;
export const LOCKOUT_MS = 15 * 60 * 1000;

const FHIR_USER = /^(Practitioner|Patient|RelatedPerson|Person)\/[A-Za-z0-9\-.]{1,64}$/;

/** End users: username, scrypt password hash, the FHIR resource they are, and lockout state. */
export class UserStore {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /** Creates or replaces a user (the password is hashed here and never stored or logged in clear). */
  async put(username: string, password: string, fhirUser: string): Promise<User> {
    if (!username || username.length > 256) throw new Error('username must be 1 to 256 characters');
    if (typeof password !== 'string' || password.length < 8) throw new Error('password must be at least 8 characters');
    if (!FHIR_USER.test(fhirUser)) throw new Error('fhirUser must be a reference such as Practitioner/123 or Patient/456');
    const hash = await hashPassword(password);
    await this.#db.query(
      `INSERT INTO auth_user (username, password_hash, fhir_user) VALUES ($1, $2, $3)
       ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, fhir_user = EXCLUDED.fhir_user, failed_attempts = 0, locked_until = NULL`,
      [username, hash, fhirUser],
    );
    return { username, fhirUser };
  }

  /** Every user, by username, with whether the account is locked now. */
  async list(): Promise<(User & { locked: boolean })[]> {
    const rows = await this.#db.query<{ username: string; fhir_user: string; locked: boolean }>(
      'SELECT username, fhir_user, coalesce(locked_until > now(), false) AS locked FROM auth_user ORDER BY username',
    );
    return rows.map((r) => ({ username: r.username, fhirUser: r.fhir_user, locked: r.locked }));
  }

  async find(username: string): Promise<User | undefined> {
    const rows = await this.#db.query<{ username: string; fhir_user: string }>('SELECT username, fhir_user FROM auth_user WHERE username = $1', [username]);
    return rows[0] ? { username: rows[0].username, fhirUser: rows[0].fhir_user } : undefined;
  }

  /**
   * Checks a password. Unknown users and locked accounts fail the same way (no account enumeration);
   * each failure counts, and MAX_FAILED_LOGINS in a row lock the account for LOCKOUT_MS.
   */
  async authenticate(username: string, password: string): Promise<User | undefined> {
    const rows = await this.#db.query<{ password_hash: string; fhir_user: string; locked: boolean }>(
      'SELECT password_hash, fhir_user, coalesce(locked_until > now(), false) AS locked FROM auth_user WHERE username = $1',
      [username],
    );
    const row = rows[0];
    if (!row) {
      await verifyPassword(password, DUMMY_HASH); // same work as a real check
      return undefined;
    }
    if (row.locked) return undefined;
    if (await verifyPassword(password, row.password_hash)) {
      await this.#db.query('UPDATE auth_user SET failed_attempts = 0, locked_until = NULL WHERE username = $1', [username]);
      return { username, fhirUser: row.fhir_user };
    }
    await this.#db.query(
      `UPDATE auth_user SET failed_attempts = failed_attempts + 1,
       locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN now() + ($3 || ' milliseconds')::interval ELSE locked_until END
       WHERE username = $1`,
      [username, MAX_FAILED_LOGINS, String(LOCKOUT_MS)],
    );
    return undefined;
  }
}

const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
