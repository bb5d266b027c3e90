import { sql, type Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log';
import type { Database } from '../db/schema';

export interface StoredGalleryItem {
  id: string;
  imageSha256: string;
  /** The item's class, which feedback may name instead of listing relevant ids. */
  label: string | null;
  revision: number;
}

/** Gallery rows in and out; images themselves live in the artifact store. */
export class GalleryRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditLog,
  ) {}

  /** The gallery's revision: 0 before the first upload. */
  async revision(modelId: string): Promise<number> {
    const row = await this.db.selectFrom('galleries').select('revision').where('model_id', '=', modelId).executeTakeFirst();
    return row ? Number(row.revision) : 0;
  }

  /**
   * Adds or replaces items as one new revision, audited in the same transaction. The revision
   * is raised in one statement, so concurrent uploads from two replicas each get their own.
   */
  async upsert(modelId: string, items: ReadonlyArray<{ id: string; imageSha256: string; label: string | null }>, actor: string): Promise<number> {
    const now = new Date().toISOString();
    return this.db.transaction().execute(async (tx) => {
      const { revision } = await tx
        .insertInto('galleries')
        .values({ model_id: modelId, revision: 1, updated_at: now })
        .onConflict((oc) => oc.column('model_id').doUpdateSet({ revision: sql<number>`galleries.revision + 1`, updated_at: now }))
        .returning('revision')
        .executeTakeFirstOrThrow();
      for (const item of items) {
        const values = { image_sha256: item.imageSha256, label: item.label, revision: Number(revision), updated_at: now };
        await tx
          .insertInto('gallery_items')
          .values({ model_id: modelId, item_id: item.id, ...values })
          .onConflict((oc) => oc.columns(['model_id', 'item_id']).doUpdateSet(values))
          .execute();
      }
      await this.audit.record({ actor, action: 'gallery.upload', subjectType: 'model', subjectId: modelId, details: { revision: Number(revision), items: items.length } }, tx);
      return Number(revision);
    });
  }

  /** The stored gallery's size and revision (both 0 before the first upload), read without loading an image. */
  async summary(modelId: string): Promise<{ size: number; revision: number }> {
    const [revision, count] = await Promise.all([
      this.revision(modelId),
      this.db.selectFrom('gallery_items').select((eb) => eb.fn.countAll().as('items')).where('model_id', '=', modelId).executeTakeFirstOrThrow(),
    ]);
    return { size: Number(count.items), revision };
  }

  /** Models that have a stored gallery. */
  async modelIds(): Promise<string[]> {
    return (await this.db.selectFrom('galleries').select('model_id').execute()).map((row) => row.model_id);
  }

  /** Items written after `revision`, in the order they were written. */
  async itemsAfter(modelId: string, revision: number): Promise<StoredGalleryItem[]> {
    const rows = await this.db
      .selectFrom('gallery_items')
      .select(['item_id', 'image_sha256', 'label', 'revision'])
      .where('model_id', '=', modelId)
      .where('revision', '>', revision)
      .orderBy('revision')
      .orderBy('item_id')
      .execute();
    return rows.map((row) => ({ id: row.item_id, imageSha256: row.image_sha256, label: row.label, revision: Number(row.revision) }));
  }
}
