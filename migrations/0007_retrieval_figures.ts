import type { Kysely } from 'kysely';
import type { MigrationFactory } from './migration';

/**
 * Retrieval figures with their spread, so means carry confidence intervals: squares of the
 * per-row cosine and overlap@k, the rank correlation of the top-k neighbours, average precision
 * per query with feedback, and per shadow the paired difference of average precision against the
 * answering variant. Gallery items gain an optional label (the class a query's feedback names).
 */
const ROLLUP_COLUMNS_0007 = [
  'cosine_sq_sum', 'overlap_sq_sum', 'rank_correlation_sum', 'rank_correlation_sq_sum',
  'average_precision_sum', 'average_precision_sq_sum', 'paired_ap_delta_sum', 'paired_ap_delta_sq_sum',
] as const;

export const retrievalFiguresMigration: MigrationFactory = () => ({
  async up(db: Kysely<unknown>) {
    // SQLite takes one column per ALTER TABLE.
    for (const column of ROLLUP_COLUMNS_0007) {
      await db.schema.alterTable('serving_rollups').addColumn(column, 'double precision', (c) => c.notNull().defaultTo(0)).execute();
    }
    await db.schema.alterTable('gallery_items').addColumn('label', 'text').execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.alterTable('gallery_items').dropColumn('label').execute();
    for (const column of [...ROLLUP_COLUMNS_0007].reverse()) await db.schema.alterTable('serving_rollups').dropColumn(column).execute();
  },
});
