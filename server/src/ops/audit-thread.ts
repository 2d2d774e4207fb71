import { parentPort, workerData } from 'node:worker_threads';
import { openPostgres } from '../store/postgres.ts';
import { insertAuditRows } from './audit-events.ts';
import type { AuditThreadData, AuditThreadReply, AuditThreadRequest } from './audit-writer.ts';

/** The audit writer's thread (see ./audit-writer.ts): one batch at a time, each answered by its id. */
const data = workerData as AuditThreadData;
const port = parentPort!;
const db = await openPostgres(data.databaseUrl, 2);

port.on('message', async (request: AuditThreadRequest) => {
  if ('close' in request) {
    await db.close();
    port.close();
    return;
  }
  const reply: AuditThreadReply = { id: request.id };
  try {
    await insertAuditRows(db, data, request.records, request.events, request.rows);
  } catch (err) {
    reply.error = (err as Error).message;
  }
  port.postMessage(reply);
});
