import { Router } from 'express';
import type { Registry } from 'prom-client';

/** Prometheus' scrape endpoint: every series of the registry, in its text format. */
export function metricsRoute(registry: Registry): Router {
  const router = Router();
  router.get('/metrics', (_req, res, next) => {
    registry.metrics().then((text) => {
      res.setHeader('content-type', registry.contentType);
      res.send(text);
    }, next);
  });
  return router;
}
