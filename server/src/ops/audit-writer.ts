import { Worker } from 'node:worker_threads';
import type { AuditEvent } from '@medplum/fhirtypes';
import { getResourceTypeList } from '../definitions.ts';
import type { Database, Sql } from '../store/database.ts';
import { insertRowsSql } from '../store/insert-batcher.ts';
import { tableColumns } from '../store/schema.ts';
import { type AuditRowContext, type Finished, insertAuditRows } from './audit-events.ts';

/**
 * Writes the audit trail's batches: builds the AuditEvent rows of finished requests and inserts
 * them with the rows the server built itself. Recording every request costs about as much as a
 * small read (building a 3 KB row, sending it, parsing and indexing it in PostgreSQL), so on PostgreSQL it runs
 * in a worker thread with a connection of its own, and the requests' event loop only hands it
 * each batch's plain records. Embedded PGlite lives in the main thread, so there the writer does too.
 */
export interface AuditWriter {
  /** Requests' records, the server's own AuditEvents that `auditIndex` covers, and rows of any others. */
  write(records: Finished[], events: AuditEvent[], rows: string[]): Promise<void>;
  close(): Promise<void>;
}

/** What the thread starts with: everything it would otherwise need the FHIR model for. */
export interface AuditThreadData extends AuditRowContext {
  databaseUrl: string;
}

export type AuditThreadRequest = { id: number; records: Finished[]; events: AuditEvent[]; rows: string[] } | { close: true };
export interface AuditThreadReply { id: number; error?: string }

export function auditWriter(db: Database, databaseUrl: string | undefined, baseUrl: string): AuditWriter {
  return db.kind === 'postgres' && databaseUrl ? threadAuditWriter(databaseUrl, baseUrl) : inlineAuditWriter(db, baseUrl);
}

/** Builds and inserts on the caller's thread, with the caller's database. */
export function inlineAuditWriter(db: Sql, baseUrl: string): AuditWriter {
  const context = rowContext(baseUrl);
  return {
    write: (records, events, rows) => insertAuditRows(db, context, records, events, rows),
    async close() {},
  };
}

/** Builds and inserts in a worker thread, started on first use and again after it fails. */
function threadAuditWriter(databaseUrl: string, baseUrl: string): AuditWriter {
  const data: AuditThreadData = { ...rowContext(baseUrl), databaseUrl };
  const pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  let worker: Worker | undefined;
  let next = 0;
  const failAll = (err: Error): void => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const start = (): Worker => {
    const w = new Worker(new URL('./audit-thread.ts', import.meta.url), { workerData: data });
    // an idle thread does not keep the process alive (`close` ends it on shutdown); a write waits for its answer
    w.unref();
    w.on('message', ({ id, error }: AuditThreadReply) => {
      const p = pending.get(id);
      pending.delete(id);
      if (pending.size === 0) w.unref();
      if (error) p?.reject(new Error(error));
      else p?.resolve();
    });
    w.on('error', failAll);
    w.on('exit', () => {
      if (worker === w) worker = undefined;
      failAll(new Error('the audit writer thread stopped'));
    });
    return w;
  };
  return {
    write(records, events, rows) {
      worker ??= start();
      worker.ref();
      const id = next++;
      const done = new Promise<void>((resolve, reject) => pending.set(id, { resolve, reject }));
      worker.postMessage({ id, records, events, rows } satisfies AuditThreadRequest);
      return done;
    },
    async close() {
      const w = worker;
      worker = undefined;
      if (!w) return;
      const exited = new Promise((resolve) => w.once('exit', resolve));
      w.postMessage({ close: true } satisfies AuditThreadRequest);
      await exited;
    },
  };
}

function rowContext(baseUrl: string): AuditRowContext {
  return { baseUrl, columns: tableColumns('AuditEvent'), statement: insertRowsSql('AuditEvent', false), resourceTypes: new Set(getResourceTypeList()) };
}
