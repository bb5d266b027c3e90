import pino, { type Logger } from 'pino';

/**
 * Where credentials could appear in a log record: request headers (bearer tokens, cookies) and
 * fields named after secrets. Censored before the record is written, at every level.
 */
const REDACTED_PATHS = [
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  'authorization',
  'token',
  'password',
  'databaseUrl',
  '*.token',
  '*.password',
  '*.databaseUrl',
];

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'gateway' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
}
