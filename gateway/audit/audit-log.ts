import type { Kysely } from 'kysely';
import { fromJson, nowIso, toDate, toJson } from '../db/codec';
import type { Database } from '../db/schema';

export interface AuditEntry {
  id: number;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  details: Record<string, unknown>;
  createdAt: Date;
}

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'createdAt'>;

/** Who changed what, when. Writers pass their transaction so the entry commits with the change. */
export class AuditLog {
  constructor(private readonly db: Kysely<Database>) {}

  /** Records `entry` through `executor`: the writer's transaction, which may be a plugin's with its own tables besides the core's. */
  async record<D extends Database>(entry: NewAuditEntry, executor?: Kysely<D>): Promise<void> {
    // Kysely's database type is invariant; the audit table is the same one whatever else the executor knows.
    const db = (executor ?? this.db) as unknown as Kysely<Database>;
    await db
      .insertInto('audit_log')
      .values({
        actor: entry.actor,
        action: entry.action,
        subject_type: entry.subjectType,
        subject_id: entry.subjectId,
        details: toJson(entry.details),
        created_at: nowIso(),
      })
      .execute();
  }

  async list(filter: { subjectType?: string; subjectId?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    let query = this.db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(filter.limit ?? 100);
    if (filter.subjectType) query = query.where('subject_type', '=', filter.subjectType);
    if (filter.subjectId) query = query.where('subject_id', '=', filter.subjectId);
    const rows = await query.execute();
    return rows.map((row) => ({
      id: Number(row.id),
      actor: row.actor,
      action: row.action,
      subjectType: row.subject_type,
      subjectId: row.subject_id,
      details: fromJson<Record<string, unknown>>(row.details),
      createdAt: toDate(row.created_at),
    }));
  }
}
