import type { RequestHandler } from 'express';

/**
 * Adds `Server-Timing: <metric>;dur=<ms>` to every answer: the time from the request reaching
 * the route to its headers being written (body parsing, authentication, the handler's work).
 * Lets clients and tests tell the gateway's time from the network's.
 */
export function serverTiming(metric: string): RequestHandler {
  return (_req, res, next) => {
    const start = performance.now();
    const writeHead = res.writeHead;
    res.writeHead = function (this: typeof res, ...args: Parameters<typeof writeHead>) {
      if (!res.headersSent) res.setHeader('Server-Timing', `${metric};dur=${(performance.now() - start).toFixed(2)}`);
      return writeHead.apply(this, args);
    } as typeof writeHead;
    next();
  };
}
