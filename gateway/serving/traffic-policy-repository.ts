import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log';
import { fromJson, nowIso, toDate, toJson } from '../db/codec';
import type { Database } from '../db/schema';
import type { TrafficPolicy } from './traffic-policy';

export interface StoredPolicy {
  policy: TrafficPolicy;
  /** Counts changes; 0 means none was ever stored (the derived default applies). */
  version: number;
  updatedBy: string | null;
  updatedAt: Date | null;
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

  /** Replaces the model's policy and audits the change in one transaction; returns the new version. */
  async save(modelId: string, policy: TrafficPolicy, actor: string): Promise<number> {
    return this.db.transaction().execute(async (tx) => {
      const previous = await tx.selectFrom('traffic_policies').select('version').where('model_id', '=', modelId).executeTakeFirst();
      const version = Number(previous?.version ?? 0) + 1;
      const values = { policy: toJson(policy), version, updated_by: actor, updated_at: nowIso() };
      await tx
        .insertInto('traffic_policies')
        .values({ model_id: modelId, ...values })
        .onConflict((oc) => oc.column('model_id').doUpdateSet(values))
        .execute();
      await this.audit.record(
        { actor, action: 'traffic_policy.set', subjectType: 'model', subjectId: modelId, details: { version, policy: { ...policy } } },
        tx,
      );
      return version;
    });
  }
}
