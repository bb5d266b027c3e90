import { sql, type Kysely } from 'kysely';
import type { MigrationFactory } from './migration';

/**
 * The data plane's state: one traffic policy per model, and per-minute metric rollups. Rollup
 * rows are keyed by gateway instance as well, so replicas never contend for a row; readers sum.
 */
export const servingMigration: MigrationFactory = (dialect) => ({
  async up(db: Kysely<unknown>) {
    const timestamp = dialect === 'postgres' ? sql`timestamptz` : sql`text`;

    await db.schema
      .createTable('traffic_policies')
      .addColumn('model_id', 'text', (c) => c.primaryKey().references('models.id').onDelete('cascade'))
      .addColumn('policy', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addColumn('updated_at', timestamp, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('serving_rollups')
      .addColumn('minute', timestamp, (c) => c.notNull())
      .addColumn('model_id', 'text', (c) => c.notNull().references('models.id').onDelete('cascade'))
      .addColumn('variant_id', 'text', (c) => c.notNull())
      .addColumn('instance_id', 'text', (c) => c.notNull())
      .addColumn('requests', 'integer', (c) => c.notNull())
      .addColumn('errors', 'integer', (c) => c.notNull())
      .addColumn('shadow_requests', 'integer', (c) => c.notNull())
      .addColumn('shadow_errors', 'integer', (c) => c.notNull())
      .addColumn('latency_ms_sum', 'double precision', (c) => c.notNull())
      .addColumn('latency_buckets', 'text', (c) => c.notNull())
      .addColumn('compute_ms_sum', 'double precision', (c) => c.notNull())
      .addColumn('compared', 'integer', (c) => c.notNull())
      .addColumn('agreed', 'integer', (c) => c.notNull())
      .addColumn('kl_sum', 'double precision', (c) => c.notNull())
      .addColumn('top1_delta_sum', 'double precision', (c) => c.notNull())
      .addColumn('cosine_sum', 'double precision', (c) => c.notNull())
      .addColumn('overlap_sum', 'double precision', (c) => c.notNull())
      .addColumn('overlap_compared', 'integer', (c) => c.notNull())
      .addColumn('feedback', 'integer', (c) => c.notNull())
      .addColumn('correct', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('serving_rollups_pk', ['minute', 'model_id', 'variant_id', 'instance_id'])
      .execute();
    await db.schema.createIndex('serving_rollups_model_minute_idx').on('serving_rollups').columns(['model_id', 'minute']).execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('serving_rollups').execute();
    await db.schema.dropTable('traffic_policies').execute();
  },
});
