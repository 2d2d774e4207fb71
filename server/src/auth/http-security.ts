import type { RequestHandler } from 'express';
import { OAUTH_PREFIX } from './provider.ts';

/** The sign-in and consent pages: no scripts, styles or frames of anyone's (they are plain forms). */
export const PAGE_CSP = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/** Readable from any origin: what a browser SMART app fetches before it has a token. */
const OPEN_DISCOVERY = new Set(['/fhir/R4/.well-known/smart-configuration', '/fhir/R4/metadata']);
const ALLOW_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
const ALLOW_HEADERS = 'Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer';
const EXPOSE_HEADERS = 'Location, Content-Location, ETag, Last-Modified, WWW-Authenticate';

/**
 * First in the chain, so on every response: security headers (nosniff, no referrer, HSTS when the
 * public URL is https, no framing of the authorization server's pages) and CORS for the app origins
 * in VIGIL_CORS_ORIGINS. Vigil's own app is same-origin and needs none; the OAuth endpoints answer
 * CORS themselves (oidc-provider allows a public client's redirect origins).
 */
export function edgeHeaders(baseUrl: string, corsOrigins: string[]): RequestHandler {
  const hsts = baseUrl.startsWith('https://');
  const allowed = new Set(corsOrigins);
  return (req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    if (hsts) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    if (req.path.startsWith(`${OAUTH_PREFIX}/`)) {
      res.setHeader('X-Frame-Options', 'DENY');
      res.setHeader('Content-Security-Policy', "frame-ancestors 'none'");
      return next();
    }
    const origin = req.get('Origin');
    if (!origin) return next();
    if (OPEN_DISCOVERY.has(req.path)) res.setHeader('Access-Control-Allow-Origin', '*');
    else if (allowed.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.vary('Origin');
    } else return next();
    if (req.method === 'OPTIONS' && req.get('Access-Control-Request-Method')) {
      res.setHeader('Access-Control-Allow-Methods', ALLOW_METHODS);
      res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      return void res.status(204).end();
    }
    res.setHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    next();
  };
}
