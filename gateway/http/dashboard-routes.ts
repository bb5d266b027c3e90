import fs from 'node:fs';
import path from 'node:path';
import express, { Router } from 'express';

/**
 * The web dashboard at /dashboard: the static files `npm run build` writes to dist/dashboard
 * (a Vite bundle; it authenticates its own GraphQL calls with the token the user enters). Its
 * pages route by URL hash, so only /dashboard/ itself serves index.html.
 */
export function dashboardRoutes(directory: string): Router {
  const router = Router();
  if (!fs.existsSync(path.join(directory, 'index.html'))) {
    router.get(['/dashboard', '/dashboard/{*rest}'], (_req, res) => {
      res.status(404).json({ error: `the dashboard is not built (no ${directory}/index.html): run npm run build` });
    });
    return router;
  }
  // Relative asset URLs need the trailing slash (non-strict routing matches both spellings here).
  router.get('/dashboard', (req, res, next) => (req.originalUrl.split('?')[0].endsWith('/') ? next() : res.redirect(301, '/dashboard/')));
  // Hashed asset names change with their content, so they may be cached for good; index.html may not.
  router.use('/dashboard/assets', express.static(path.join(directory, 'assets'), { immutable: true, maxAge: '365d', fallthrough: false }));
  router.use('/dashboard', express.static(directory, { index: 'index.html', maxAge: 0, fallthrough: false }));
  return router;
}
