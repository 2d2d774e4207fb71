import type { NextFunction, Request, Response } from 'express';
import type { AuditEvent } from '@medplum/fhirtypes';
import { Counter, type Registry } from 'prom-client';
import type { AccessPolicy } from '../auth/access-policy.ts';
import { rowJson } from '../store/insert-batcher.ts';
import { type AuditedBundle, type AuditedEntry, auditIndexCovers, type Finished, type Requester, stamped } from './audit-events.ts';
import type { AuditWriter } from './audit-writer.ts';
import type { Logger } from './logger.ts';
import { type SecurityEvent, securityAuditEvent } from './security-audit.ts';

/**
 * The audit trail: one FHIR AuditEvent per request to the FHIR API and the device gateway, shaped
 * after IHE Basic Audit Log Patterns (type `rest`, subtype the FHIR interaction): who (the user's
 * fhirUser, else the client), the client, what (type/id/version, or the query), the action, the
 * outcome (refusals included), the source address and when.
 *
 * Requests never wait for it: a finished request leaves a small record in a bounded buffer, and
 * the buffer is written in multi-row inserts: a full batch whenever it holds `batchSize` records,
 * everything every `flushMs` and at shutdown. Building and writing the rows is the writer's
 * (./audit-writer.ts): on PostgreSQL a thread of its own, off the requests' event loop. When the
 * database is down the records wait for the next flush; when the buffer is full new records are
 * dropped and counted (`vigil_audit_dropped_total`). A crash loses what was buffered: at most
 * `flushMs` worth of requests, and never more than `maxBuffered`.
 *
 * The server's own AuditEvents take the same path, whole: each bot run's (bots/runtime/audit.ts)
 * and the security events outside the FHIR API (./security-audit.ts: tokens, sign-in, consent,
 * websocket bindings, MQTT sessions). The admin API's requests are recorded as the gateway's are.
 *
 * AuditEvents are written to their table alone, beside the history and the change outbox: they
 * are never changed, so they have no history (system `_history` stays about the data), and they
 * notify no subscription and trigger no bot, so auditing can never feed on itself.
 */

export interface AuditOptions {
  flushMs: number;
  /** AuditEvents per full INSERT. */
  batchSize: number;
  maxBuffered: number;
}

export const DEFAULT_AUDIT_OPTIONS: AuditOptions = { flushMs: 1_000, batchSize: 256, maxBuffered: 50_000 };

/** Lets the audit trail name each entry of a batch or transaction, whose results only the handler knows. */
export function auditEntries(res: Response, type: AuditedBundle['type'], entries: AuditedEntry[]): void {
  res.locals.auditBundle = { type, entries } satisfies AuditedBundle;
}

/** Names what a request outside the FHIR API acted on (a user name, a client id), for its AuditEvent's entity. */
export function auditTarget(res: Response, name: string): void {
  res.locals.auditTarget = name;
}

/** Not data: discovery and the CapabilityStatement. */
const UNAUDITED = /^\/(metadata|\.well-known\/.*)$/;

export class AuditTrail {
  readonly #writer: AuditWriter;
  readonly #baseUrl: string;
  readonly #logger: Logger;
  readonly #options: AuditOptions;
  readonly #timer: NodeJS.Timeout;
  readonly #written: Counter;
  readonly #dropped: Counter;
  #buffer: (Finished | AuditEvent)[] = [];
  #flushing?: Promise<void>;
  /** Whether the pass under way writes everything, not only full batches. */
  #all = false;
  #failing = false;

  constructor(writer: AuditWriter, baseUrl: string, logger: Logger, registry: Registry, options: AuditOptions = DEFAULT_AUDIT_OPTIONS) {
    this.#writer = writer;
    this.#baseUrl = baseUrl;
    this.#logger = logger;
    this.#options = options;
    this.#written = new Counter({ name: 'vigil_audit_events_total', help: 'AuditEvents written', registers: [registry] });
    this.#dropped = new Counter({ name: 'vigil_audit_dropped_total', help: 'AuditEvents dropped because the buffer was full', registers: [registry] });
    this.#timer = setInterval(() => void this.flush(), options.flushMs);
    this.#timer.unref();
  }

  /**
   * Express middleware, first on the audited paths: notes each request when its connection is done
   * with it ('close', not 'finish': a request whose client went away is recorded too, as 499 if
   * nothing was answered).
   */
  readonly middleware = (req: Request, res: Response, next: NextFunction): void => {
    if (UNAUDITED.test(req.path)) return next();
    const { baseUrl, method, path } = req;
    const q = req.originalUrl.indexOf('?');
    res.on('close', () => {
      // a search's parameters may come as a form (POST …/_search)
      const form = method === 'POST' && path.endsWith('/_search') && req.body && typeof req.body === 'object' ? new URLSearchParams(req.body as Record<string, string>).toString() : '';
      const url = q < 0 ? '' : req.originalUrl.slice(q + 1);
      const location = res.getHeader('location');
      const etag = res.getHeader('etag');
      this.#record({
        recorded: new Date().toISOString(),
        base: baseUrl,
        method,
        path,
        query: [url, form].filter(Boolean).join('&'),
        status: res.headersSent ? res.statusCode : 499,
        address: (req.ip ?? req.socket.remoteAddress)?.replace(/^::ffff:/, ''),
        who: requester(res.locals.access as AccessPolicy | undefined),
        location: typeof location === 'string' ? location : undefined,
        etag: typeof etag === 'string' ? etag : undefined,
        bundle: res.locals.auditBundle as AuditedBundle | undefined,
        target: res.locals.auditTarget as string | undefined,
      });
    });
    next();
  };

  /** Writes everything buffered, after any pass under way (which may write full batches only); concurrent calls share one pass. */
  async flush(): Promise<void> {
    await this.#flushing;
    this.#all = true;
    await this.#pass();
  }

  #pass(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = undefined;
      this.#all = false;
    });
    return this.#flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    // records that arrived during the last pass
    if (this.#buffer.length) await this.flush();
    await this.#writer.close();
  }

  /** An AuditEvent the server built itself, written with the next batch (it gets its id then). */
  recordEvent(event: AuditEvent): void {
    this.#record(event);
  }

  /** A security event outside the FHIR API, as an AuditEvent. */
  readonly security = (event: SecurityEvent): void => {
    this.#record(securityAuditEvent(event, this.#baseUrl));
  };

  #record(finished: Finished | AuditEvent): void {
    if (this.#buffer.length >= this.#options.maxBuffered) {
      this.#dropped.inc();
      return;
    }
    this.#buffer.push(finished);
    if (this.#buffer.length >= this.#options.batchSize) void this.#pass();
  }

  async #drain(): Promise<void> {
    const { batchSize } = this.#options;
    while (this.#buffer.length >= batchSize || (this.#all && this.#buffer.length > 0)) {
      const batch = this.#buffer.splice(0, batchSize);
      try {
        await this.#write(batch);
        this.#written.inc(batch.length);
        if (this.#failing) this.#logger.info('audit trail writing again');
        this.#failing = false;
      } catch (err) {
        // kept for the next flush, within the bound; logged once per outage
        const room = Math.max(0, this.#options.maxBuffered - this.#buffer.length);
        this.#dropped.inc(batch.length - Math.min(room, batch.length));
        this.#buffer.unshift(...batch.slice(0, room));
        if (!this.#failing) this.#logger.error({ err }, 'audit trail write failed; retrying on the next flush');
        this.#failing = true;
        return;
      }
    }
  }

  /** Requests' records and the server's own AuditEvents are built into rows by the writer; events of a shape its indexer does not cover are rows already. */
  async #write(batch: (Finished | AuditEvent)[]): Promise<void> {
    const records: Finished[] = [];
    const events: AuditEvent[] = [];
    const rows: string[] = [];
    for (const item of batch) {
      if (!('resourceType' in item)) records.push(item);
      else if (auditIndexCovers(item)) events.push(item);
      else {
        // indexed here, by the generic indexer
        const event = stamped(item);
        rows.push(rowJson(event, JSON.stringify(event), this.#baseUrl));
      }
    }
    await this.#writer.write(records, events, rows);
  }

}

/** The part of an access policy an AuditEvent names, as plain data for the writer's thread. */
function requester(policy: AccessPolicy | undefined): Requester | undefined {
  if (!policy) return undefined;
  const { clientId, sub, fhirUser, patient, userPatients } = policy;
  return { clientId, sub, fhirUser, patient, userPatients, system: policy.grants.some((g) => g.context === 'system') };
}
