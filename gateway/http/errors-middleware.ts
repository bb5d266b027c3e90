import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { ArtifactNotFoundError, ArtifactTooLargeError } from '../../workers/common/artifacts/artifact-store';
import { GatewayError, RetryLaterError } from '../errors';

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

/** The status and message a caller gets for anything thrown while serving a request. */
export function errorResponse(error: unknown): { status: number; message: string } {
  const parserError = error as BodyParserError;
  if (error instanceof GatewayError) return { status: error.httpStatus, message: error.message };
  if (error instanceof ArtifactTooLargeError) return { status: 413, message: error.message };
  if (error instanceof ArtifactNotFoundError) return { status: 404, message: error.message };
  if (parserError?.type === 'entity.too.large') return { status: 413, message: `request body is larger than the limit of ${parserError.limit} bytes` };
  if (parserError?.type === 'entity.parse.failed') return { status: 400, message: `malformed JSON body: ${(error as Error).message}` };
  if (typeof parserError?.status === 'number' && parserError.status >= 400 && parserError.status < 500) {
    return { status: parserError.status, message: (error as Error).message };
  }
  return { status: 500, message: 'internal error' };
}

/** Turns anything thrown by a route into `{ "error": "..." }` with a fitting status. */
export function errorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const { status, message } = errorResponse(error);
    if (status >= 500) logger.error({ err: error, requestId: res.locals.requestId, path: req.path }, 'request failed');
    if (res.headersSent) return;
    if (error instanceof RetryLaterError) res.setHeader('Retry-After', String(error.retryAfterSeconds));
    res.status(status).json({ error: message });
  };
}

export function notFoundHandler(req: Request, res: Response): void {
  res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
}
