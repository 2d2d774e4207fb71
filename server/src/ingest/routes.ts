import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { OperationOutcome } from '@medplum/fhirtypes';
import type { AccessPolicy } from '../auth/access-policy.ts';
import { FhirError, badRequest, notFound } from '../fhir/outcome.ts';
import type { IngestGateway } from './gateway.ts';
import type { MappingStore } from './mappings.ts';
import { MappingError } from './template/index.ts';

type Handler = (req: Request, res: Response) => Promise<void>;

/** The device gateway's HTTP surface: mappings, message ingest, dead letters. */
export function ingestRouter(gateway: IngestGateway, mappings: MappingStore, maxBodyBytes: number): Router {
  const router = Router();
  const wrap = (handler: Handler) => (req: Request, res: Response, next: NextFunction) => {
    res.locals.route = `${req.baseUrl}${String(req.route?.path ?? '')}`;
    handler(req, res).catch((err: unknown) => next(err instanceof MappingError ? mappingOutcome(err) : err));
  };
  const json = express.json({ limit: maxBodyBytes, strict: false, type: () => true });

  router.get('/mappings', wrap(async (_req, res) => {
    res.json({ mappings: (await mappings.list()).map((m) => ({ name: m.name, updatedAt: m.updatedAt })) });
  }));
  router.get('/mappings/:name', wrap(async (req, res) => {
    const m = await mappings.get(req.params.name as string);
    if (!m) throw notFound(`No mapping named "${req.params.name}"`);
    res.json({ name: m.name, updatedAt: m.updatedAt, ...m.definition });
  }));
  router.put('/mappings/:name', json, wrap(async (req, res) => {
    const created = await mappings.put(req.params.name as string, req.body);
    res.status(created ? 201 : 200).json({ name: req.params.name, ...(req.body as object) });
  }));
  router.delete('/mappings/:name', wrap(async (req, res) => {
    if (!(await mappings.delete(req.params.name as string))) throw notFound(`No mapping named "${req.params.name}"`);
    res.status(204).end();
  }));

  router.get('/dead-letters', wrap(async (req, res) => {
    const mapping = typeof req.query.mapping === 'string' ? req.query.mapping : undefined;
    const count = Math.min(Number(req.query._count ?? 100) || 100, 1000);
    res.json({ deadLetters: await gateway.deadLetters.list(mapping, count) });
  }));
  router.post('/dead-letters/:id/\\$replay', wrap(async (req, res) => {
    const letter = await gateway.deadLetters.get(req.params.id as string);
    if (!letter) throw notFound(`No dead letter ${req.params.id}`);
    const results = await gateway.ingest(letter.mapping, [letter.message]);
    if (!results) throw notFound(`The mapping "${letter.mapping}" no longer exists`);
    if (results[0].status === 'ok') await gateway.deadLetters.markReplayed(letter.id);
    res.json({ result: results[0] });
  }));

  router.post('/:mapping', express.text({ limit: maxBodyBytes, type: () => true }), wrap(async (req, res) => {
    const mapping = req.params.mapping as string;
    const text = typeof req.body === 'string' ? req.body : '';
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      const results = await gateway.ingest(mapping, [text]);
      if (!results) throw notFound(`No mapping named "${mapping}"`);
      throw badRequest(`The body is not JSON (${(err as Error).message}); kept as dead letter ${(results[0] as { deadLetterId?: string }).deadLetterId}`);
    }
    const messages = Array.isArray(body) ? body : [body];
    if (messages.length === 0) throw badRequest('No messages in the body');
    const results = await gateway.ingest(mapping, messages, res.locals.access as AccessPolicy);
    if (!results) throw notFound(`No mapping named "${mapping}"`);
    const accepted = results.filter((r) => r.status === 'ok').length;
    const forbidden = results.filter((r) => r.status === 'forbidden').length;
    res.json({ accepted, rejected: results.length - accepted - forbidden, ...(forbidden ? { forbidden } : {}), results });
  }));
  return router;
}

function mappingOutcome(err: MappingError): FhirError {
  const outcome: OperationOutcome['issue'] = [{
    severity: 'error', code: 'invalid', diagnostics: err.message, expression: [[err.template, err.field].filter(Boolean).join('.')],
  }];
  return new FhirError(400, outcome ?? []);
}
