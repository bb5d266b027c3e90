import type { Kysely } from 'kysely';
import type { MigrationFactory } from './migration';

const COLUMNS = ['paired_both', 'paired_primary_only', 'paired_shadow_only', 'paired_neither'] as const;

/**
 * Paired correctness per shadow: rows with feedback that the answering variant and a shadow both
 * predicted, split by who got them right. Counted on the shadow's rollup row (the primary is the
 * request's answering variant), so McNemar's test and Newcombe's paired interval can be computed
 * from stored minutes. Existing rows start at zero.
 */
export const pairedOutcomesMigration: MigrationFactory = () => ({
  async up(db: Kysely<unknown>) {
    for (const column of COLUMNS) {
      await db.schema.alterTable('serving_rollups').addColumn(column, 'integer', (c) => c.notNull().defaultTo(0)).execute();
    }
  },

  async down(db: Kysely<unknown>) {
    for (const column of [...COLUMNS].reverse()) await db.schema.alterTable('serving_rollups').dropColumn(column).execute();
  },
});
