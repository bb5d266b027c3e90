import { sql } from 'kysely';
import { Router } from 'express';
import type { DatabaseHandle } from '../db/database';

/** Liveness says the process answers; readiness also needs the database and a finished start. */
export function healthRoutes(database: DatabaseHandle, isStarted: () => boolean): Router {
  const router = Router();
  router.get('/v2/health/live', (_req, res) => {
    res.json({ live: true });
  });
  router.get('/v2/health/ready', async (_req, res) => {
    let databaseOk = false;
    try {
      await sql`select 1`.execute(database.db);
      databaseOk = true;
    } catch {
      databaseOk = false;
    }
    const ready = databaseOk && isStarted();
    res.status(ready ? 200 : 503).json({ ready });
  });
  return router;
}
