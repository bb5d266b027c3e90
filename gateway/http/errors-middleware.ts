import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { ArtifactNotFoundError, ArtifactTooLargeError } from '../artifacts/artifact-store';
import { GatewayError } from '../errors';

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

/** Turns anything thrown by a route into `{ "error": "..." }` with a fitting status. */
export function errorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const parserError = error as BodyParserError;
    let status = 500;
    let message = 'internal error';
    if (error instanceof GatewayError) {
      status = error.httpStatus;
      message = error.message;
    } else if (error instanceof ArtifactTooLargeError) {
      status = 413;
      message = error.message;
    } else if (error instanceof ArtifactNotFoundError) {
      status = 404;
      message = error.message;
    } else if (parserError?.type === 'entity.too.large') {
      status = 413;
      message = `request body is larger than the limit of ${parserError.limit} bytes`;
    } else if (parserError?.type === 'entity.parse.failed') {
      status = 400;
      message = `malformed JSON body: ${(error as Error).message}`;
    } else if (typeof parserError?.status === 'number' && parserError.status >= 400 && parserError.status < 500) {
      status = parserError.status;
      message = (error as Error).message;
    }
    if (status >= 500) logger.error({ err: error, requestId: res.locals.requestId, path: req.path }, 'request failed');
    if (res.headersSent) return;
    res.status(status).json({ error: message });
  };
}

export function notFoundHandler(req: Request, res: Response): void {
  res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
}
