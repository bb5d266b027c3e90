import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Migrator, sql, type Kysely } from 'kysely';
import { openPostgres, openSqlite, type DatabaseHandle } from '../../gateway/db/database';
import { migrations } from '../../migrations';
import { createTestDatabase, describeWithPostgres } from '../support/services';

/** A migrator over the core migrations, to stop at a chosen one. */
function migrator(handle: DatabaseHandle): Migrator {
  const forDialect = Object.fromEntries(Object.entries(migrations).map(([name, factory]) => [name, factory(handle.dialect)]));
  return new Migrator({ db: handle.db, provider: { getMigrations: async () => forDialect }, allowUnorderedMigrations: true });
}

function suite(open: () => Promise<{ handle: DatabaseHandle; dispose: () => Promise<void> }>) {
  test('0005_compute_histograms moves stored latency buckets into columns and back', async () => {
    const { handle, dispose } = await open();
    try {
      const db = handle.db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      expect((await migrator(handle).migrateTo('0002_serving')).error).toBeUndefined();
      const now = new Date().toISOString();
      await db.insertInto('models').values({ id: 'm', name: 'm', task: 'CLASSIFICATION', description: '', labels: '[]', preprocessing: '{}', created_at: now, updated_at: now }).execute();
      const stored = [3, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 5];
      await db
        .insertInto('serving_rollups')
        .values({
          minute: '2020-01-01T00:00:00.000Z', model_id: 'm', variant_id: 'v', instance_id: 'i', requests: 11, errors: 0, shadow_requests: 0,
          shadow_errors: 0, latency_ms_sum: 0, latency_buckets: JSON.stringify(stored), compute_ms_sum: 0, compared: 0, agreed: 0, kl_sum: 0,
          top1_delta_sum: 0, cosine_sum: 0, overlap_sum: 0, overlap_compared: 0, feedback: 0, correct: 0,
        })
        .execute();

      expect((await migrator(handle).migrateTo('0005_compute_histograms')).error).toBeUndefined();
      const row = (await sql<Record<string, unknown>>`select * from serving_rollups`.execute(handle.db)).rows[0];
      expect(stored.map((_, i) => Number(row[`latency_bucket_${i}`]))).toEqual(stored);
      expect(stored.map((_, i) => Number(row[`compute_bucket_${i}`]))).toEqual(new Array(13).fill(0));
      expect(Number(row.shadow_dropped)).toBe(0);
      expect(row).not.toHaveProperty('latency_buckets');

      expect((await migrator(handle).migrateTo('0002_serving')).error).toBeUndefined();
      const reverted = (await sql<{ latency_buckets: string }>`select latency_buckets from serving_rollups`.execute(handle.db)).rows[0];
      expect(JSON.parse(reverted.latency_buckets)).toEqual(stored);
    } finally {
      await handle.close();
      await dispose();
    }
  });
}

describe('rollup histogram columns on SQLite', () =>
  suite(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-rollup-migration-'));
    return { handle: openSqlite(path.join(dir, 'db.sqlite')), dispose: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }));

describeWithPostgres('rollup histogram columns on PostgreSQL', () =>
  suite(async () => {
    const database = await createTestDatabase();
    return { handle: openPostgres(database.url), dispose: database.drop };
  }));
