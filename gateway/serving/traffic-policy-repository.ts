import type { Insertable, Kysely, Transaction } from 'kysely';
import type { AuditLog } from '../audit/audit-log';
import { fromJson, toDate, toJson } from '../db/codec';
import type { Database, TrafficPoliciesTable } from '../db/schema';
import type { TrafficPolicy } from './traffic-policy';

export interface StoredPolicy {
  policy: TrafficPolicy;
  /** Counts changes; 0 means none was ever stored (the derived default applies). */
  version: number;
  updatedBy: string | null;
  updatedAt: Date | null;
}

type PolicyValues = Omit<Insertable<TrafficPoliciesTable>, 'model_id'>;

/** What a successful compare-and-set stored. */
export interface PolicyWrite {
  version: number;
  updatedAt: Date;
}

/** Traffic policy rows in and out. */
export class TrafficPolicyRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditLog,
  ) {}

  async find(modelId: string): Promise<StoredPolicy | undefined> {
    const row = await this.db.selectFrom('traffic_policies').selectAll().where('model_id', '=', modelId).executeTakeFirst();
    return row && { policy: fromJson<TrafficPolicy>(row.policy), version: Number(row.version), updatedBy: row.updated_by, updatedAt: toDate(row.updated_at) };
  }

  /**
   * Stores `policy` as the version after `readVersion`, but only while the stored version is
   * still `readVersion` (0: no row yet), and audits it in the same transaction. Undefined when
   * another writer got there first; nothing is written then.
   */
  async compareAndSet(modelId: string, readVersion: number, policy: TrafficPolicy, actor: string): Promise<PolicyWrite | undefined> {
    const version = readVersion + 1;
    const updatedAt = new Date();
    const values = { policy: toJson(policy), version, updated_by: actor, updated_at: updatedAt.toISOString() };
    return this.db.transaction().execute(async (tx) => {
      if (!(await this.writeIfUnchanged(tx, modelId, readVersion, values))) return undefined;
      await this.audit.record(
        { actor, action: 'traffic_policy.set', subjectType: 'model', subjectId: modelId, details: { version, policy: { ...policy } } },
        tx,
      );
      return { version, updatedAt };
    });
  }

  /**
   * One statement each, so the check and the write are atomic on both dialects: PostgreSQL
   * re-checks the version (or the key) after waiting for a concurrent writer's row lock, and
   * SQLite runs one writer at a time.
   */
  private async writeIfUnchanged(tx: Transaction<Database>, modelId: string, readVersion: number, values: PolicyValues): Promise<boolean> {
    if (readVersion === 0) {
      const inserted = await tx
        .insertInto('traffic_policies')
        .values({ model_id: modelId, ...values })
        .onConflict((oc) => oc.column('model_id').doNothing())
        .executeTakeFirst();
      return Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1;
    }
    const updated = await tx.updateTable('traffic_policies').set(values).where('model_id', '=', modelId).where('version', '=', readVersion).executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }
}
