import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Subscription } from '@medplum/fhirtypes';
import { WebSocketServer, type WebSocket } from 'ws';
import { clientIp } from '../auth/rate-limit.ts';
import type { Logger } from '../ops/logger.ts';
import { connectionEntity, resourceEntity, type SecurityEvent } from '../ops/security-audit.ts';
import type { Database } from '../store/database.ts';
import type { Hub, WsNotification } from './hub.ts';
import { subscriptionOwnerKey } from './access.ts';
import { eventCount } from './events.ts';
import { notificationBundle } from './notification.ts';
import { parseSubscription } from './parse.ts';

export const WS_PATH = '/fhir/R4/ws';
const MAX_BINDINGS = 100;
const SUBSCRIPTION_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export interface WebsocketOptions {
  server: Server;
  hub: Hub;
  db: Database;
  fhirBase: string;
  logger: Logger;
  /** Records the channel's security events. */
  audit: (event: SecurityEvent) => void;
  /** Whether X-Forwarded-For names the caller (VIGIL_TRUST_PROXY). */
  trustProxy: boolean;
}

/** A socket's state; `clientId` and `fhirUser` are whom its last binding token was issued to. */
interface Connection {
  /** Names the connection in its AuditEvents. */
  id: string;
  address: string;
  bound: Set<string>;
  clientId?: string;
  fhirUser?: string;
}

/**
 * The websocket channel at /fhir/R4/ws. Two ways to bind:
 * - `bind {id}` (R4): the socket gets `ping {id}` for each notification, never content, so that
 *   knowing a subscription id discloses nothing;
 * - `bind-with-token {token}` (Backport IG), the token from `$get-ws-binding-token` (an
 *   authenticated REST call, for the caller's own subscriptions): the socket gets the notifications
 *   themselves (the payload-carrying mode, limited to the owner's access when matched), starting
 *   with a handshake per subscription.
 * Replies: `bound {id}` / `error {reason}`.
 * The audit trail records each connection, binding (refusals included: an unknown subscription,
 * an invalid or expired token) and disconnect, never the token.
 */
export class WebsocketChannel {
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  readonly #db: Database;
  readonly #fhirBase: string;
  readonly #logger: Logger;
  readonly #record: (event: SecurityEvent) => void;
  /** subscription id → socket → whether it gets payloads. */
  readonly #bindings = new Map<string, Map<WebSocket, boolean>>();
  readonly #onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  readonly #server: Server;

  constructor({ server, hub, db, fhirBase, logger, audit, trustProxy }: WebsocketOptions) {
    this.#server = server;
    this.#db = db;
    this.#fhirBase = fhirBase;
    this.#logger = logger;
    this.#record = audit;
    const address = clientIp(trustProxy);
    this.#onUpgrade = (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== WS_PATH) return;
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, address(req)));
    };
    server.on('upgrade', this.#onUpgrade);
    hub.subscribe((message) => this.#deliver(message));
  }

  async close(): Promise<void> {
    this.#server.off('upgrade', this.#onUpgrade);
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #accept(ws: WebSocket, address: string): void {
    const conn: Connection = { id: randomUUID(), address, bound: new Set() };
    this.#audit(conn, 'connect');
    ws.on('message', (data) => {
      const text = data.toString().trim();
      this.#command(ws, conn, text).catch((err: Error) => {
        this.#logger.warn({ err }, 'websocket command failed');
        ws.send(`error ${err.message}`);
      });
    });
    ws.on('close', () => {
      for (const id of conn.bound) this.#bindings.get(id)?.delete(ws);
      this.#audit(conn, 'disconnect', undefined, [...conn.bound]);
    });
  }

  #audit(conn: Connection, subtype: string, failure?: string, subscriptions: string[] = []): void {
    this.#record({
      kind: 'websocket',
      subtype,
      action: 'E',
      failure,
      clientId: conn.clientId,
      fhirUser: conn.fhirUser,
      address: conn.address,
      entity: [connectionEntity(conn.id), ...subscriptions.map((id) => resourceEntity(`Subscription/${id}`))],
    });
  }

  async #command(ws: WebSocket, conn: Connection, text: string): Promise<void> {
    const [verb, arg = ''] = text.split(/\s+/, 2);
    if (verb === 'bind') {
      const sub = await this.#load(arg);
      const named = SUBSCRIPTION_ID.test(arg) ? [arg] : [];
      if (!sub) {
        this.#audit(conn, 'bind', 'no websocket subscription', named);
        return void ws.send(`error no websocket subscription ${arg.slice(0, 64)}`);
      }
      this.#bind(ws, conn.bound, arg, false);
      this.#audit(conn, 'bind', undefined, named);
      ws.send(`bound ${arg}`);
    } else if (verb === 'bind-with-token') {
      const rows = await this.#db.query<{ subscription_ids: string[] }>(
        'SELECT subscription_ids FROM subscription_ws_token WHERE token = $1 AND expires_at > now()',
        [arg],
      );
      if (!rows[0]) {
        this.#audit(conn, 'bind-with-token', 'invalid or expired token');
        return void ws.send('error invalid or expired token');
      }
      // issued to this owner and client (routes.ts): binds only while the subscription is still the owner's
      const [owner, clientId] = arg.split('.').slice(1).map((part) => Buffer.from(part, 'base64url').toString());
      conn.clientId = clientId;
      conn.fhirUser = owner === '*' || owner.startsWith('client:') ? undefined : owner;
      const refused: string[] = [];
      const bound: string[] = [];
      for (const id of rows[0].subscription_ids) {
        const sub = await this.#load(id);
        if (!sub) continue;
        if (owner !== '*' && subscriptionOwnerKey(sub) !== owner) {
          refused.push(id);
          ws.send(`error Subscription ${id} no longer belongs to the token's owner`);
          continue;
        }
        this.#bind(ws, conn.bound, id, true);
        bound.push(id);
        ws.send(`bound ${id}`);
        const parsed = parseSubscription(sub, true);
        if (parsed.topic) {
          ws.send(JSON.stringify(notificationBundle({ sub: parsed, fhirBase: this.#fhirBase, type: 'handshake', eventsSinceStart: await eventCount(this.#db, id) })));
        }
      }
      if (bound.length) this.#audit(conn, 'bind-with-token', undefined, bound);
      if (refused.length) this.#audit(conn, 'bind-with-token', 'no longer the token owner\'s', refused);
    } else {
      ws.send(`error unknown command ${verb.slice(0, 32)}`);
    }
  }

  #bind(ws: WebSocket, bound: Set<string>, id: string, payload: boolean): void {
    if (bound.size >= MAX_BINDINGS && !bound.has(id)) throw new Error(`at most ${MAX_BINDINGS} bindings per socket`);
    bound.add(id);
    let sockets = this.#bindings.get(id);
    if (!sockets) this.#bindings.set(id, (sockets = new Map()));
    sockets.set(ws, payload || sockets.get(ws) === true);
  }

  async #load(id: string): Promise<Subscription | undefined> {
    if (!SUBSCRIPTION_ID.test(id)) return undefined;
    const rows = await this.#db.query<{ content: string }>('SELECT content FROM "Subscription" WHERE id = $1 AND NOT deleted', [id]);
    const sub = rows[0] ? (JSON.parse(rows[0].content) as Subscription) : undefined;
    return sub?.channel?.type === 'websocket' && sub.status !== 'off' ? sub : undefined;
  }

  #deliver(message: WsNotification): void {
    for (const [ws, payload] of this.#bindings.get(message.subscriptionId) ?? []) {
      ws.send(payload && message.payload !== undefined ? message.payload : message.ping);
    }
  }
}
