import type { Request, Response } from 'express';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { FhirError } from './outcome.ts';

export const FHIR_JSON = 'application/fhir+json';

/** `_format` may ask only for JSON; XML and other formats are not served. */
export function checkFormat(req: Request): void {
  const format = req.query._format;
  if (typeof format === 'string' && !['json', 'application/json', FHIR_JSON].includes(format.split(';')[0])) {
    throw new FhirError(406, [{ severity: 'error', code: 'not-supported', diagnostics: `_format ${format} is not supported; use json` }]);
  }
}

/** Sends stored JSON text as it is, re-serialising only when `_pretty` asks for it. */
export function sendJson(req: Request, res: Response, status: number, body: string | Resource | OperationOutcome): void {
  let text = typeof body === 'string' ? body : JSON.stringify(body);
  if (req.query._pretty === 'true') text = JSON.stringify(JSON.parse(text), null, 2);
  res.status(status).type(FHIR_JSON).send(text);
}

export function versionHeaders(res: Response, version: { versionId: string; lastUpdated: string }): void {
  res.setHeader('ETag', `W/"${version.versionId}"`);
  res.setHeader('Last-Modified', new Date(version.lastUpdated).toUTCString());
}

/** `Prefer: return=minimal | representation | OperationOutcome`. */
export const preferredReturn = (req: Request): string | undefined => /return=([A-Za-z]+)/.exec(req.get('Prefer') ?? '')?.[1];

/** Answers a create or update as the client prefers. */
export function sendWriteResult(req: Request, res: Response, status: number, content: string, outcome: OperationOutcome): void {
  const prefer = preferredReturn(req);
  if (prefer === 'minimal') {
    res.status(status).end();
  } else if (prefer === 'OperationOutcome') {
    sendJson(req, res, status, outcome);
  } else {
    sendJson(req, res, status, content);
  }
}

/** `If-Match: W/"3"` → `3`. */
export function parseETag(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(?:W\/)?"?([^"]*)"?$/.exec(value.trim());
  return m?.[1];
}

export const isLenient = (req: Request): boolean => /handling=lenient/.test(req.get('Prefer') ?? '');
