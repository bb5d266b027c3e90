import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

/**
 * Express middleware: one debug line per answered request, headers included (the logger redacts
 * credentials: see `createLogger`). The infer endpoint, which bypasses Express, is left out: its
 * outcomes are counted by the serving metrics instead.
 */
export function requestLog(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (!logger.isLevelEnabled('debug')) return next();
    const started = performance.now();
    res.once('finish', () => {
      logger.debug(
        { requestId: res.locals.requestId, method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - started), headers: req.headers },
        'request answered',
      );
    });
    next();
  };
}
