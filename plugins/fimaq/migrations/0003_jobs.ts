import { sql, type Kysely } from 'kysely';
import type { MigrationFactory } from '../../../gateway/plugin-surface';

/**
 * Quantization jobs and their transactional outbox: a job row and the entry that says "publish
 * me" commit together, and the dispatcher deletes the entry only once the transport accepted it.
 */
export const jobsMigration: MigrationFactory = (dialect) => ({
  async up(db: Kysely<unknown>) {
    const timestamp = dialect === 'postgres' ? sql`timestamptz` : sql`text`;

    await db.schema
      .createTable('quantization_jobs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('model_id', 'text', (c) => c.notNull().references('models.id').onDelete('cascade'))
      .addColumn('parent_variant_id', 'text', (c) => c.notNull().references('variants.id'))
      .addColumn('idempotency_key', 'text', (c) => c.unique())
      .addColumn('request', 'text', (c) => c.notNull())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('stage', 'text')
      .addColumn('block', 'integer')
      .addColumn('blocks', 'integer')
      .addColumn('progress', 'real', (c) => c.notNull().defaultTo(0))
      .addColumn('eta_seconds', 'real')
      .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('worker', 'text')
      .addColumn('log', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('variant_id', 'text', (c) => c.references('variants.id'))
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', timestamp, (c) => c.notNull())
      .addColumn('updated_at', timestamp, (c) => c.notNull())
      .addColumn('started_at', timestamp)
      .addColumn('finished_at', timestamp)
      .execute();
    await db.schema.createIndex('quantization_jobs_model_idx').on('quantization_jobs').columns(['model_id', 'created_at']).execute();
    await db.schema.createIndex('quantization_jobs_status_idx').on('quantization_jobs').column('status').execute();

    await db.schema
      .createTable('job_outbox')
      .addColumn('id', 'integer', (c) =>
        dialect === 'postgres' ? c.generatedAlwaysAsIdentity().primaryKey() : c.primaryKey().autoIncrement(),
      )
      .addColumn('job_id', 'text', (c) => c.notNull().references('quantization_jobs.id').onDelete('cascade'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('available_at', timestamp, (c) => c.notNull())
      .addColumn('last_error', 'text')
      .addColumn('created_at', timestamp, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('job_outbox_available_idx').on('job_outbox').column('available_at').execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('job_outbox').execute();
    await db.schema.dropTable('quantization_jobs').execute();
  },
});
