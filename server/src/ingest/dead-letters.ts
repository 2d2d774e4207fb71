import { randomUUID } from 'node:crypto';
import type { Sql } from '../store/database.ts';

/** Messages that could not become Observations, kept with the reason so that they can be replayed. */
export interface DeadLetter {
  id: string;
  mapping: string;
  receivedAt: string;
  reason: string;
  message: unknown;
  replayedAt?: string;
}

/** Mapping names have at most 64 characters, but an MQTT topic may name any: what is kept of it stays within the index's key size. */
const MAX_MAPPING_CHARS = 256;

const COLUMNS = `id, mapping, received_at AS "receivedAt", reason, message, replayed_at AS "replayedAt"`;

export class DeadLetters {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async add(entries: { mapping: string; reason: string; message: unknown }[]): Promise<string[]> {
    if (entries.length === 0) return [];
    const ids = entries.map(() => randomUUID());
    await this.#sql.query(
      'INSERT INTO ingest_dead_letter (id, mapping, reason, message) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])',
      [ids, entries.map((e) => storable(e.mapping.slice(0, MAX_MAPPING_CHARS))), entries.map((e) => storable(e.reason)), entries.map((e) => rawText(e.message))],
    );
    return ids;
  }

  async list(mapping: string | undefined, limit: number): Promise<DeadLetter[]> {
    const rows = await this.#sql.query<DeadLetter & { message: string }>(
      `SELECT ${COLUMNS} FROM ingest_dead_letter WHERE ($1::text IS NULL OR mapping = $1) ORDER BY received_at DESC LIMIT $2`,
      [mapping ?? null, limit],
    );
    return rows.map(parsed);
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
    const rows = await this.#sql.query<DeadLetter & { message: string }>(`SELECT ${COLUMNS} FROM ingest_dead_letter WHERE id = $1`, [id]);
    return rows[0] ? parsed(rows[0]) : undefined;
  }

  async markReplayed(id: string): Promise<void> {
    await this.#sql.query('UPDATE ingest_dead_letter SET replayed_at = now() WHERE id = $1', [id]);
  }
}

/**
 * Messages are kept as received: JSON re-serialised, anything else (unparseable bodies) verbatim,
 * except NUL, which PostgreSQL text cannot hold. JSON nested too deeply to serialise again (JSON.parse
 * takes any depth, JSON.stringify does not) is kept as a note: failing here would refuse, and a
 * device re-send, a message that can never be mapped.
 */
function rawText(message: unknown): string {
  let text: string;
  try {
    text = typeof message === 'string' ? message : JSON.stringify(message) ?? String(message);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    text = '(not kept: JSON nested too deeply to store)';
  }
  return storable(text);
}

/** Without NUL, which PostgreSQL text cannot hold; mapping names from MQTT topics may carry it too. */
function storable(text: string): string {
  return text.replaceAll('\u0000', '\uFFFD');
}

function parsed(row: DeadLetter & { message: string }): DeadLetter {
  let message: unknown = row.message;
  try {
    message = JSON.parse(row.message);
  } catch {
    // kept verbatim
  }
  return { ...row, message, replayedAt: row.replayedAt ?? undefined };
}
