import type { Kysely, Transaction } from 'kysely';
import { fromJson, toDate, toJson, toOptionalDate, conflict, type AuditLog, type NewAuditEntry, type Database } from '../../gateway/plugin-surface';
import type { GuardrailFigure } from './guardrails';
import type { PairTotals } from './rollout-evidence';
import { storedPlan, type RolloutPlan } from './rollout-plan';
import { LIVE_STATUSES, type RolloutEvent, type RolloutEventKind, type RolloutRecord, type RolloutStatus } from './rollout-record';

type Timestamp = Date | string;

/** The plugin's tables as stored (see migrations/rollouts_0001_rollouts.ts). */
export type RolloutTables = {
  rollouts: {
    id: string;
    model_id: string;
    active_model_id: string | null;
    candidate_variant_id: string;
    baseline_variant_id: string;
    plan: string;
    status: string;
    step_index: number;
    step_started_at: Timestamp;
    step_base: string;
    looks: number;
    last_look_samples: number;
    version: number;
    applied_version: number;
    lease_owner: string | null;
    lease_expires_at: Timestamp | null;
    reason: string | null;
    created_by: string;
    created_at: Timestamp;
    updated_at: Timestamp;
    finished_at: Timestamp | null;
  };
  rollout_events: {
    rollout_id: string;
    seq: number;
    at: Timestamp;
    kind: string;
    step_index: number;
    traffic_percent: number;
    actor: string;
    reason: string;
    figures: string;
  };
};

type Db = Kysely<Database & RolloutTables>;
type RolloutRow = RolloutTables['rollouts'];

/** A new entry of a rollout's event log; its number and time are given on write. */
export interface NewRolloutEvent {
  kind: RolloutEventKind;
  stepIndex: number;
  trafficPercent: number;
  actor: string;
  reason: string;
  figures: GuardrailFigure[];
}

/** The fields a change of state may set. */
export interface RolloutChange {
  status?: RolloutStatus;
  stepIndex?: number;
  stepStartedAt?: Date;
  stepBase?: PairTotals;
  looks?: number;
  lastLookSamples?: number;
  reason?: string | null;
}

function toRecord(row: RolloutRow): RolloutRecord {
  return {
    id: row.id,
    modelId: row.model_id,
    candidateVariantId: row.candidate_variant_id,
    baselineVariantId: row.baseline_variant_id,
    plan: storedPlan(fromJson<RolloutPlan>(row.plan)),
    status: row.status as RolloutStatus,
    stepIndex: Number(row.step_index),
    stepStartedAt: toDate(row.step_started_at),
    stepBase: fromJson<PairTotals>(row.step_base),
    looks: Number(row.looks),
    lastLookSamples: Number(row.last_look_samples),
    version: Number(row.version),
    appliedVersion: Number(row.applied_version),
    reason: row.reason,
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    finishedAt: toOptionalDate(row.finished_at),
  };
}

const isLive = (status: RolloutStatus) => LIVE_STATUSES.includes(status);

/** Unique-constraint failures of both drivers (PostgreSQL 23505, SQLite's constraint codes). */
function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/**
 * Rollouts and their event logs. Every change of state is a compare-and-set on the row's version,
 * written with its event and audit entry in one transaction; the controller's lease is a
 * compare-and-set on (owner, expiry).
 */
export class RolloutRepository {
  private readonly db: Db;

  constructor(
    db: Kysely<Database>,
    private readonly audit: AuditLog,
  ) {
    this.db = db.withTables<RolloutTables>();
  }

  /** Writes a new rollout with its first event; CONFLICT when the model already has a live one. */
  async insert(record: RolloutRecord, event: NewRolloutEvent, audit: NewAuditEntry): Promise<void> {
    try {
      await this.db.transaction().execute(async (tx) => {
        await tx
          .insertInto('rollouts')
          .values({
            id: record.id,
            model_id: record.modelId,
            active_model_id: isLive(record.status) ? record.modelId : null,
            candidate_variant_id: record.candidateVariantId,
            baseline_variant_id: record.baselineVariantId,
            plan: toJson(record.plan),
            status: record.status,
            step_index: record.stepIndex,
            step_started_at: record.stepStartedAt.toISOString(),
            step_base: toJson(record.stepBase),
            looks: record.looks,
            last_look_samples: record.lastLookSamples,
            version: record.version,
            applied_version: record.appliedVersion,
            lease_owner: null,
            lease_expires_at: null,
            reason: record.reason,
            created_by: record.createdBy,
            created_at: record.createdAt.toISOString(),
            updated_at: record.updatedAt.toISOString(),
            finished_at: null,
          })
          .execute();
        await this.writeEvent(tx, record.id, event);
        await this.audit.record(audit, tx as unknown as Kysely<Database>);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict('this model already has a running or paused rollout; abort or finish it first');
      throw error;
    }
  }

  async find(id: string): Promise<RolloutRecord | undefined> {
    const row = await this.db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  /** Newest first. */
  async list(filter: { modelId?: string; status?: RolloutStatus; limit?: number } = {}): Promise<RolloutRecord[]> {
    let query = this.db.selectFrom('rollouts').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(filter.limit ?? 100);
    if (filter.modelId) query = query.where('model_id', '=', filter.modelId);
    if (filter.status) query = query.where('status', '=', filter.status);
    return (await query.execute()).map(toRecord);
  }

  /** Rollouts a controller has work on: live ones, and finished ones whose last traffic change is not written yet. */
  async listWork(): Promise<RolloutRecord[]> {
    const rows = await this.db
      .selectFrom('rollouts')
      .selectAll()
      .where((eb) => eb.or([eb('active_model_id', 'is not', null), eb('applied_version', '!=', eb.ref('version'))]))
      .execute();
    return rows.map(toRecord);
  }

  /**
   * Applies a change if the rollout is still at `expectedVersion`, with its event and audit entry;
   * undefined when another writer changed it first (nothing is written then).
   */
  async transition(id: string, expectedVersion: number, change: RolloutChange, event: NewRolloutEvent, audit: NewAuditEntry): Promise<RolloutRecord | undefined> {
    return this.db.transaction().execute(async (tx) => {
      const now = new Date().toISOString();
      const finished = change.status !== undefined && !isLive(change.status);
      const result = await tx
        .updateTable('rollouts')
        .set({
          version: expectedVersion + 1,
          updated_at: now,
          ...(change.status !== undefined ? { status: change.status } : {}),
          ...(finished ? { active_model_id: null, finished_at: now } : {}),
          ...(change.stepIndex !== undefined ? { step_index: change.stepIndex } : {}),
          ...(change.stepStartedAt !== undefined ? { step_started_at: change.stepStartedAt.toISOString() } : {}),
          ...(change.stepBase !== undefined ? { step_base: toJson(change.stepBase) } : {}),
          ...(change.looks !== undefined ? { looks: change.looks } : {}),
          ...(change.lastLookSamples !== undefined ? { last_look_samples: change.lastLookSamples } : {}),
          ...(change.reason !== undefined ? { reason: change.reason } : {}),
        })
        .where('id', '=', id)
        .where('version', '=', expectedVersion)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return undefined;
      await this.writeEvent(tx, id, event);
      await this.audit.record(audit, tx as unknown as Kysely<Database>);
      const row = await tx.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      return toRecord(row);
    });
  }

  /** A hold: the look bookkeeping and why it holds, which is not a change of state (no event, no version bump). */
  async recordHold(id: string, version: number, looks: number, lastLookSamples: number, reason: string): Promise<void> {
    await this.db.updateTable('rollouts').set({ looks, last_look_samples: lastLookSamples, reason }).where('id', '=', id).where('version', '=', version).execute();
  }

  /** Notes that the traffic policy of `version` is written (a later version keeps its own mark). */
  async markApplied(id: string, version: number): Promise<void> {
    await this.db.updateTable('rollouts').set({ applied_version: version }).where('id', '=', id).where('version', '=', version).execute();
  }

  /**
   * Takes or renews the controller lease of a rollout for `owner` until `now + leaseMs`: succeeds
   * when nobody holds it, the owner already does, or the holder's lease expired. One row update,
   * so two replicas racing for it cannot both win.
   */
  async acquireLease(id: string, owner: string, leaseMs: number, now = new Date()): Promise<boolean> {
    const result = await this.db
      .updateTable('rollouts')
      .set({ lease_owner: owner, lease_expires_at: new Date(now.getTime() + leaseMs).toISOString() })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_owner', '=', owner), eb('lease_expires_at', '<', now.toISOString())]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Gives back every lease of `owner` (on stop), so another replica or the next start takes over at once. */
  async releaseLeases(owner: string): Promise<void> {
    await this.db.updateTable('rollouts').set({ lease_owner: null, lease_expires_at: null }).where('lease_owner', '=', owner).execute();
  }

  async events(rolloutId: string): Promise<RolloutEvent[]> {
    const rows = await this.db.selectFrom('rollout_events').selectAll().where('rollout_id', '=', rolloutId).orderBy('seq').execute();
    return rows.map((row) => ({
      rolloutId: row.rollout_id,
      seq: Number(row.seq),
      at: toDate(row.at),
      kind: row.kind as RolloutEventKind,
      stepIndex: Number(row.step_index),
      trafficPercent: Number(row.traffic_percent),
      actor: row.actor,
      reason: row.reason,
      figures: fromJson<GuardrailFigure[]>(row.figures),
    }));
  }

  private async writeEvent(tx: Transaction<Database & RolloutTables>, rolloutId: string, event: NewRolloutEvent): Promise<void> {
    const last = await tx.selectFrom('rollout_events').select((eb) => eb.fn.max('seq').as('seq')).where('rollout_id', '=', rolloutId).executeTakeFirst();
    await tx
      .insertInto('rollout_events')
      .values({
        rollout_id: rolloutId,
        seq: Number(last?.seq ?? 0) + 1,
        at: new Date().toISOString(),
        kind: event.kind,
        step_index: event.stepIndex,
        traffic_percent: event.trafficPercent,
        actor: event.actor,
        reason: event.reason,
        figures: toJson(event.figures),
      })
      .execute();
  }
}
