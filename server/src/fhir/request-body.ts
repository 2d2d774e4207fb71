import { StringDecoder } from 'node:string_decoder';
import type { Readable, Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Request } from 'express';
import { FhirError } from './outcome.ts';

/**
 * Streams a request body to `onText` as UTF-8 text, piece by piece as it arrives, without ever
 * holding it whole. `Content-Encoding` (gzip, deflate, br) is undone first; more than `limit`
 * bytes after that is a 413. Whatever `onText` throws ends the reading. On any failure the rest of
 * the body is read off and dropped before the promise rejects, so that the client, still sending,
 * receives the answer.
 */
export function streamBody(req: Request, limit: number, onText: (text: string) => void): Promise<void> {
  const charset = /;\s*charset=("?)([^";]+)\1/i.exec(req.get('Content-Type') ?? '')?.[2].toLowerCase();
  if (charset && charset !== 'utf-8' && charset !== 'utf8') return refuse(req, unsupported(`charset ${charset} is not supported; use UTF-8`));
  const encoding = (req.get('Content-Encoding') ?? 'identity').toLowerCase();
  if (encoding === 'identity' && Number(req.get('Content-Length')) > limit) return refuse(req, tooLarge());
  const decompress = DECOMPRESSORS.get(encoding);
  if (!decompress && encoding !== 'identity') return refuse(req, unsupported(`Content-Encoding ${encoding} is not supported`));
  const decompressor = decompress?.();
  const source: Readable = decompressor ? req.pipe(decompressor) : req;
  const decoder = new StringDecoder('utf8');
  let received = 0;

  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      source.off('data', onData);
      if (decompressor) {
        req.unpipe(decompressor);
        decompressor.on('error', () => {}).destroy();
      }
      drain(req).then(() => reject(err), () => reject(err));
    };
    const read = (text: string): void => {
      if (failed || !text) return;
      try {
        onText(text);
      } catch (err) {
        fail(err);
      }
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limit) fail(tooLarge());
      else read(decoder.write(chunk));
    };
    source.on('data', onData);
    source.on('end', () => {
      read(decoder.end());
      if (!failed) resolve();
    });
    req.on('error', () => fail(incomplete()));
    decompressor?.on('error', (err) => fail(new FhirError(400, [{ severity: 'error', code: 'structure', diagnostics: `The body is not valid ${encoding}: ${err.message}` }])));
  });
}

const DECOMPRESSORS = new Map<string, () => Transform>([['gzip', createGunzip], ['deflate', createInflate], ['br', createBrotliDecompress]]);

const tooLarge = (): FhirError => new FhirError(413, [{ severity: 'error', code: 'too-costly', diagnostics: 'Request body is larger than the configured limit' }]);
const unsupported = (text: string): FhirError => new FhirError(415, [{ severity: 'error', code: 'not-supported', diagnostics: text }]);
const incomplete = (): FhirError => new FhirError(400, [{ severity: 'error', code: 'incomplete', diagnostics: 'The request body was not received completely' }]);

async function refuse(req: Request, err: FhirError): Promise<never> {
  await drain(req);
  throw err;
}

/** Reads the rest of the request and drops it. */
function drain(req: Request): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    req.once('end', resolve).once('close', resolve).once('error', resolve);
    req.resume();
  });
}
