import type { Kysely } from 'kysely';
import type { MigrationFactory } from '../../../gateway/plugin-surface';

/**
 * A job's iteration within the current block gets its own columns, so `block`/`blocks` mean
 * model blocks in every stage.
 */
export const jobIterationsMigration: MigrationFactory = () => ({
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('quantization_jobs').addColumn('iteration', 'integer').execute();
    await db.schema.alterTable('quantization_jobs').addColumn('iterations', 'integer').execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.alterTable('quantization_jobs').dropColumn('iterations').execute();
    await db.schema.alterTable('quantization_jobs').dropColumn('iteration').execute();
  },
});
