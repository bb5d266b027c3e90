import { sql, type Kysely } from 'kysely';
import type { MigrationFactory } from '../../../gateway/plugin-surface';

/**
 * The rollouts plugin's tables: one row per rollout (its plan, where it is, the controller's
 * lease) and its event log. `active_model_id` holds the model's id while the rollout is running
 * or paused and null after, so a unique index refuses a second live rollout on a model on any
 * replica. Event numbers are per rollout (no identity column, the same on both dialects).
 */
export const rolloutsMigration: MigrationFactory = (dialect) => ({
  async up(db: Kysely<unknown>) {
    const timestamp = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
    await db.schema
      .createTable('rollouts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('model_id', 'text', (c) => c.notNull().references('models.id').onDelete('cascade'))
      .addColumn('active_model_id', 'text', (c) => c.unique())
      .addColumn('candidate_variant_id', 'text', (c) => c.notNull())
      .addColumn('baseline_variant_id', 'text', (c) => c.notNull())
      .addColumn('plan', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('step_index', 'integer', (c) => c.notNull())
      .addColumn('step_started_at', timestamp, (c) => c.notNull())
      .addColumn('step_base', 'text', (c) => c.notNull())
      .addColumn('looks', 'integer', (c) => c.notNull())
      .addColumn('last_look_samples', 'integer', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('applied_version', 'integer', (c) => c.notNull())
      .addColumn('lease_owner', 'text')
      .addColumn('lease_expires_at', timestamp)
      .addColumn('reason', 'text')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', timestamp, (c) => c.notNull())
      .addColumn('updated_at', timestamp, (c) => c.notNull())
      .addColumn('finished_at', timestamp)
      .execute();
    await db.schema.createIndex('rollouts_model_idx').on('rollouts').columns(['model_id', 'created_at']).execute();

    await db.schema
      .createTable('rollout_events')
      .addColumn('rollout_id', 'text', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('at', timestamp, (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('step_index', 'integer', (c) => c.notNull())
      .addColumn('traffic_percent', 'double precision', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('figures', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('rollout_events_pk', ['rollout_id', 'seq'])
      .execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('rollout_events').execute();
    await db.schema.dropTable('rollouts').execute();
  },
});
