import type { Logger } from 'pino';
import { GatewayError, type RegistryService, type VariantRecord } from '../../gateway/plugin-surface';
import type { ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import type { JobEvent, JobProgressEvent, JobResultEvent } from '../../workers/common/jobs/messages';
import type { JobRecord } from './job-record';
import type { JobRepository } from './job-repository';
import type { JobChanged } from './quantization-service';

type SucceededEvent = Extract<JobResultEvent, { outcome: 'succeeded' }>;

/** Called once a job's variant is recorded (the plugin puts it in shadow of its parent). */
export type VariantRecorded = (job: JobRecord, variant: VariantRecord) => Promise<void>;

/**
 * Applies what workers report. Every event may arrive more than once and late: progress of an
 * ended job is ignored, the first result ends the job, and a job yields at most one variant
 * (found again by the job id recorded in its config).
 */
export class JobEventApplier {
  constructor(
    private readonly jobs: JobRepository,
    private readonly registry: RegistryService,
    private readonly gatewayArtifacts: ArtifactStore,
    private readonly workerArtifacts: ArtifactStore,
    private readonly onChanged: JobChanged,
    private readonly onVariantRecorded: VariantRecorded,
    private readonly logger: Logger,
  ) {}

  apply = async (event: JobEvent): Promise<void> => {
    if (event.kind === 'progress') return this.progress(event);
    if (event.outcome === 'succeeded') return this.succeeded(event);
    const ended = await this.jobs.finish(event.jobId, {
      status: event.outcome, reason: event.reason, worker: event.worker, attempt: event.attempt, logLine: `job ${event.outcome}: ${event.reason}`,
    });
    if (ended) {
      this.logger.info({ job: ended.id, outcome: event.outcome, reason: event.reason }, 'quantization job ended');
      this.onChanged(ended);
    }
  };

  private async progress(event: JobProgressEvent): Promise<void> {
    const updated = await this.jobs.recordProgress(event.jobId, {
      stage: event.stage,
      block: event.block ?? null,
      blocks: event.blocks ?? null,
      iteration: event.iteration ?? null,
      iterations: event.iterations ?? null,
      progress: event.progress,
      etaSeconds: event.etaSeconds ?? null,
      attempt: event.attempt,
      worker: event.worker,
      message: event.message ?? null,
    });
    if (updated) this.onChanged(updated);
  }

  private async succeeded(event: SucceededEvent): Promise<void> {
    const job = await this.jobs.find(event.jobId);
    if (!job || (job.status !== 'queued' && job.status !== 'running')) return;
    let variant: VariantRecord;
    try {
      variant = await this.recordVariant(job, event);
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      // The registry refused the worker's model (wrong signature, say): retrying cannot help.
      const reason = `the quantized model was rejected: ${error.message}`;
      const failed = await this.jobs.finish(job.id, { status: 'failed', reason, worker: event.worker, logLine: `job failed: ${reason}` });
      if (failed) this.onChanged(failed);
      return;
    }
    const ended = await this.jobs.finish(job.id, {
      status: 'succeeded', reason: null, variantId: variant.id, worker: event.worker, attempt: event.attempt,
      logLine: `job finished: variant ${variant.tag} (${variant.id}) registered`,
    });
    if (!ended) return;
    this.logger.info({ job: job.id, variant: variant.id, tag: variant.tag }, 'quantization job succeeded');
    this.onChanged(ended);
    if (event.parentMetrics) await this.recordParentMetrics(job, event.parentMetrics);
    try {
      await this.onVariantRecorded(ended, variant);
    } catch (error) {
      this.logger.warn({ err: error, job: job.id, variant: variant.id }, 'variant recorded but not put in shadow');
    }
  }

  /** The parent's figures on the job's evaluation set, so the registry holds both side by side. */
  private async recordParentMetrics(job: JobRecord, metrics: Record<string, unknown>): Promise<void> {
    try {
      await this.registry.recordVariantMetrics(job.parentVariantId, metrics, { name: `fimaq-job:${job.id}` });
    } catch (error) {
      this.logger.warn({ err: error, job: job.id, parent: job.parentVariantId }, 'the parent\'s evaluation figures were not recorded');
    }
  }

  private async recordVariant(job: JobRecord, event: SucceededEvent): Promise<VariantRecord> {
    const variants = await this.registry.listVariants(job.modelId);
    const existing = variants.find((v) => v.config.jobId === job.id);
    if (existing) return existing;
    if (this.workerArtifacts !== this.gatewayArtifacts && !(await this.gatewayArtifacts.has(event.artifactSha256))) {
      await this.gatewayArtifacts.put(await this.workerArtifacts.read(event.artifactSha256));
    }
    const { method, bits } = job.spec;
    const baseTag = `${bits.toLowerCase()}-${method.toLowerCase()}`;
    const tag = variants.some((v) => v.tag === baseTag) ? `${baseTag}-${job.id.slice(0, 8)}` : baseTag;
    return this.registry.addVariant(
      {
        modelId: job.modelId,
        parentVariantId: job.parentVariantId,
        tag,
        precision: bits,
        method: method.toLowerCase(),
        config: {
          ...event.config,
          jobId: job.id,
          calibSize: job.spec.calibSize,
          reconSize: job.spec.reconSize,
          iters: job.spec.iters,
          rank: job.spec.rank,
          seed: job.spec.seed,
          worker: event.worker,
        },
        metrics: event.metrics,
        artifactSha256: event.artifactSha256,
        status: 'ready',
      },
      { name: `fimaq-job:${job.id}` },
    );
  }
}
