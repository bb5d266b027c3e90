import type { Kysely, Selectable } from 'kysely';
import { fromJson, nowIso, toDate, toJson, toOptionalDate, type AuditLog, type Database } from '../../gateway/plugin-surface';
import type { FimaqDatabase, FimaqTables, QuantizationJobsTable } from './job-tables';
import type { JobStatus, QuantizationJobSpec, WorkerCapabilities } from '../../workers/common/jobs/messages';
import type { JobRecord, OutboxEntry, QuantizationRequest } from './job-record';

/** Progress messages kept per job. */
export const JOB_LOG_LINES = 20;

const UNFINISHED: JobStatus[] = ['queued', 'running'];

function toJob(row: Selectable<QuantizationJobsTable>): JobRecord {
  return {
    id: row.id,
    modelId: row.model_id,
    parentVariantId: row.parent_variant_id,
    idempotencyKey: row.idempotency_key,
    request: fromJson<QuantizationRequest>(row.request),
    spec: fromJson<QuantizationJobSpec>(row.spec),
    status: row.status as JobStatus,
    stage: row.stage,
    block: row.block,
    blocks: row.blocks,
    iteration: row.iteration ?? null,
    iterations: row.iterations ?? null,
    progress: Number(row.progress),
    etaSeconds: row.eta_seconds === null ? null : Number(row.eta_seconds),
    attempt: row.attempt,
    worker: fromJson<WorkerCapabilities | null>(row.worker),
    log: fromJson<string[]>(row.log),
    reason: row.reason,
    variantId: row.variant_id,
    createdBy: row.created_by,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    startedAt: toOptionalDate(row.started_at),
    finishedAt: toOptionalDate(row.finished_at),
  };
}

export interface NewJob {
  spec: QuantizationJobSpec;
  request: QuantizationRequest;
  idempotencyKey: string | null;
  createdBy: string;
}

export interface ProgressUpdate {
  stage: string;
  block: number | null;
  blocks: number | null;
  iteration: number | null;
  iterations: number | null;
  progress: number;
  etaSeconds: number | null;
  attempt: number;
  worker: WorkerCapabilities;
  message: string | null;
}

/** Job and outbox rows in and out; the only place that knows the tables. */
export class JobRepository {
  private readonly db: Kysely<FimaqDatabase>;

  /** Takes the gateway's database; the plugin's tables are its own, added to the type here. */
  constructor(
    db: Kysely<Database>,
    private readonly audit: AuditLog,
  ) {
    this.db = db.withTables<FimaqTables>();
  }

  /** The job row and its dispatch entry in one transaction: both exist or neither. */
  async create(job: NewJob): Promise<JobRecord> {
    const now = nowIso();
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('quantization_jobs')
        .values({
          id: job.spec.jobId,
          model_id: job.spec.model.id,
          parent_variant_id: job.spec.parent.variantId,
          idempotency_key: job.idempotencyKey,
          request: toJson(job.request),
          spec: toJson(job.spec),
          status: 'queued',
          stage: null,
          block: null,
          blocks: null,
          iteration: null,
          iterations: null,
          progress: 0,
          eta_seconds: null,
          attempt: 0,
          worker: null,
          log: toJson([]),
          reason: null,
          variant_id: null,
          created_by: job.createdBy,
          created_at: now,
          updated_at: now,
          started_at: null,
          finished_at: null,
        })
        .execute();
      await tx.insertInto('job_outbox').values({ job_id: job.spec.jobId, kind: 'dispatch', attempts: 0, available_at: now, last_error: null, created_at: now }).execute();
      const { jobId, model, parent, method, bits } = job.spec;
      await this.audit.record<FimaqDatabase>(
        { actor: job.createdBy, action: 'quantization_job.create', subjectType: 'quantization_job', subjectId: jobId, details: { model: model.name, parentVariantId: parent.variantId, method, bits } },
        tx,
      );
    });
    return (await this.find(job.spec.jobId)) as JobRecord;
  }

  async find(id: string): Promise<JobRecord | undefined> {
    const row = await this.db.selectFrom('quantization_jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toJob(row) : undefined;
  }

  async findByIdempotencyKey(key: string): Promise<JobRecord | undefined> {
    const row = await this.db.selectFrom('quantization_jobs').selectAll().where('idempotency_key', '=', key).executeTakeFirst();
    return row ? toJob(row) : undefined;
  }

  /** Newest first. */
  async list(filter: { modelId?: string; status?: JobStatus }): Promise<JobRecord[]> {
    let query = this.db.selectFrom('quantization_jobs').selectAll();
    if (filter.modelId) query = query.where('model_id', '=', filter.modelId);
    if (filter.status) query = query.where('status', '=', filter.status);
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
    return rows.map(toJob);
  }

  listUnfinished(): Promise<JobRecord[]> {
    return this.db.selectFrom('quantization_jobs').selectAll().where('status', 'in', UNFINISHED).orderBy('created_at').execute().then((rows) => rows.map(toJob));
  }

  /** Records a worker's progress; undefined when the job already ended (a late event changes nothing). */
  async recordProgress(id: string, update: ProgressUpdate): Promise<JobRecord | undefined> {
    const job = await this.find(id);
    if (!job || !UNFINISHED.includes(job.status)) return undefined;
    const log = update.message ? [...job.log, update.message].slice(-JOB_LOG_LINES) : job.log;
    const now = nowIso();
    const result = await this.db
      .updateTable('quantization_jobs')
      .set({
        status: 'running',
        stage: update.stage,
        block: update.block,
        blocks: update.blocks,
        iteration: update.iteration,
        iterations: update.iterations,
        // Within one attempt progress only goes forward, whatever order late events arrive in.
        progress: update.attempt === job.attempt ? Math.max(job.progress, update.progress) : update.progress,
        eta_seconds: update.etaSeconds,
        attempt: update.attempt,
        worker: toJson(update.worker),
        log: toJson(log),
        updated_at: now,
        started_at: job.startedAt ? job.startedAt.toISOString() : now,
      })
      .where('id', '=', id)
      .where('status', 'in', UNFINISHED)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n ? this.find(id) : undefined;
  }

  /**
   * Ends an unfinished job. Returns the ended job, or undefined when it had already ended:
   * the first outcome wins, so repeated or late results change nothing.
   */
  async finish(
    id: string,
    outcome: {
      status: 'succeeded' | 'failed' | 'cancelled';
      reason: string | null;
      variantId?: string;
      worker?: WorkerCapabilities;
      attempt?: number;
      /** The line the job's log ends with (what became of it). */
      logLine?: string;
    },
    /** Who ended it, when a person did (a cancellation): recorded in the audit log with the change. */
    actor?: string,
  ): Promise<JobRecord | undefined> {
    const now = nowIso();
    const job = outcome.logLine ? await this.find(id) : undefined;
    const result = await this.db.transaction().execute(async (tx) => {
      const updated = await tx
        .updateTable('quantization_jobs')
        .set({
          status: outcome.status,
          reason: outcome.reason,
          variant_id: outcome.variantId ?? null,
          // The last stage says how the job ended, not what it was doing before.
          stage: outcome.status === 'succeeded' ? 'finished' : outcome.status,
          ...(job && outcome.logLine ? { log: toJson([...job.log, outcome.logLine].slice(-JOB_LOG_LINES)) } : {}),
          ...(outcome.status === 'succeeded' ? { progress: 100, eta_seconds: 0 } : { eta_seconds: null }),
          ...(outcome.worker ? { worker: toJson(outcome.worker) } : {}),
          ...(outcome.attempt ? { attempt: outcome.attempt } : {}),
          updated_at: now,
          finished_at: now,
        })
        .where('id', '=', id)
        .where('status', 'in', UNFINISHED)
        .executeTakeFirst();
      if (updated.numUpdatedRows === 0n) return false;
      // A job that ends before it was published needs no publishing.
      await tx.deleteFrom('job_outbox').where('job_id', '=', id).where('kind', '=', 'dispatch').execute();
      if (actor !== undefined) {
        await this.audit.record<FimaqDatabase>({ actor, action: `quantization_job.${outcome.status}`, subjectType: 'quantization_job', subjectId: id, details: { reason: outcome.reason } }, tx);
      }
      if (outcome.status === 'cancelled') {
        await tx.insertInto('job_outbox').values({ job_id: id, kind: 'cancel', attempts: 0, available_at: now, last_error: null, created_at: now }).execute();
      }
      return true;
    });
    return result ? this.find(id) : undefined;
  }

  /** Queues a dispatch again (transports that forget jobs on restart); no-op when one is pending. */
  async redispatch(id: string): Promise<void> {
    const pending = await this.db.selectFrom('job_outbox').select('id').where('job_id', '=', id).where('kind', '=', 'dispatch').executeTakeFirst();
    if (pending) return;
    const now = nowIso();
    await this.db.insertInto('job_outbox').values({ job_id: id, kind: 'dispatch', attempts: 0, available_at: now, last_error: null, created_at: now }).execute();
  }

  async dueOutbox(limit: number): Promise<OutboxEntry[]> {
    const rows = await this.db
      .selectFrom('job_outbox')
      .select(['id', 'job_id', 'kind', 'attempts'])
      .where('available_at', '<=', nowIso())
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: Number(r.id), jobId: r.job_id, kind: r.kind as OutboxEntry['kind'], attempts: r.attempts }));
  }

  async completeOutbox(id: number): Promise<void> {
    await this.db.deleteFrom('job_outbox').where('id', '=', id).execute();
  }

  async deferOutbox(id: number, error: string, retryAt: Date): Promise<void> {
    await this.db
      .updateTable('job_outbox')
      .set((eb) => ({ attempts: eb('attempts', '+', 1), last_error: error.slice(0, 1000), available_at: retryAt.toISOString() }))
      .where('id', '=', id)
      .execute();
  }

  async outboxSize(): Promise<number> {
    const row = await this.db.selectFrom('job_outbox').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
