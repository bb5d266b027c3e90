import { sql, type Kysely } from 'kysely';
import type { MigrationFactory } from './migration';

/**
 * Retrieval galleries, kept across restarts and shared by replicas: one row per model with a
 * revision that every upload raises, and one per item naming its image in the artifact store and
 * the revision that last wrote it, so a replica reloads only what changed since it last looked.
 */
export const galleriesMigration: MigrationFactory = (dialect) => ({
  async up(db: Kysely<unknown>) {
    const timestamp = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
    await db.schema
      .createTable('galleries')
      .addColumn('model_id', 'text', (c) => c.primaryKey().references('models.id').onDelete('cascade'))
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('updated_at', timestamp, (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('gallery_items')
      .addColumn('model_id', 'text', (c) => c.notNull().references('models.id').onDelete('cascade'))
      .addColumn('item_id', 'text', (c) => c.notNull())
      .addColumn('image_sha256', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('updated_at', timestamp, (c) => c.notNull())
      .addPrimaryKeyConstraint('gallery_items_pk', ['model_id', 'item_id'])
      .execute();
    await db.schema.createIndex('gallery_items_model_revision_idx').on('gallery_items').columns(['model_id', 'revision']).execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('gallery_items').execute();
    await db.schema.dropTable('galleries').execute();
  },
});
