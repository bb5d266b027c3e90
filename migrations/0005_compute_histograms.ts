import { sql, type Kysely } from 'kysely';
import type { MigrationFactory } from './migration';

/** Buckets per histogram at the time of this migration: 12 finite bounds and the overflow. */
const BUCKETS = 13;
const indices = Array.from({ length: BUCKETS }, (_, i) => i);

/**
 * Rollup histograms as one integer column per bucket, for end-to-end latency (moved out of the
 * JSON array `latency_buckets`) and, new, for onnxruntime compute time; and the shadow requests
 * dropped on a full queue. Columns, not JSON, so a query sums buckets over any time step in SQL
 * on both dialects without parsing text per row.
 */
export const computeHistogramsMigration: MigrationFactory = (dialect) => ({
  async up(db: Kysely<unknown>) {
    const columns = [...indices.map((i) => `latency_bucket_${i}`), ...indices.map((i) => `compute_bucket_${i}`), 'shadow_dropped'];
    // SQLite takes one column per ALTER TABLE.
    for (const column of columns) {
      await db.schema.alterTable('serving_rollups').addColumn(column, 'integer', (c) => c.notNull().defaultTo(0)).execute();
    }
    const bucketOfJson = (i: number) =>
      dialect === 'postgres' ? sql`coalesce((latency_buckets::json->>${sql.lit(i)})::integer, 0)` : sql`coalesce(json_extract(latency_buckets, ${sql.lit(`$[${i}]`)}), 0)`;
    await sql`update serving_rollups set ${sql.join(indices.map((i) => sql`${sql.ref(`latency_bucket_${i}`)} = ${bucketOfJson(i)}`))}`.execute(db);
    await db.schema.alterTable('serving_rollups').dropColumn('latency_buckets').execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.alterTable('serving_rollups').addColumn('latency_buckets', 'text', (c) => c.notNull().defaultTo('[]')).execute();
    const refs = indices.map((i) => sql.ref(`latency_bucket_${i}`));
    const array = dialect === 'postgres' ? sql`json_build_array(${sql.join(refs)})::text` : sql`json_array(${sql.join(refs)})`;
    await sql`update serving_rollups set latency_buckets = ${array}`.execute(db);
    for (const column of [...indices.map((i) => `latency_bucket_${i}`), ...indices.map((i) => `compute_bucket_${i}`), 'shadow_dropped']) {
      await db.schema.alterTable('serving_rollups').dropColumn(column).execute();
    }
  },
});
