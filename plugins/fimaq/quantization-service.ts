import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { badInput, conflict, GatewayError, notFound, type ModelRecord, type RegistryService, type VariantRecord } from '../../gateway/plugin-surface';
import type { JobStatus, QuantizationJobSpec } from '../../workers/common/jobs/messages';
import type { RolloutStarter } from '../../schema/rollouts';
import type { ImageSetPacker } from './image-set-packer';
import type { JobRecord, QuantizationRequest } from './job-record';
import type { JobRepository } from './job-repository';

export const SIZE_LIMITS = { calibSize: [1, 100_000], reconSize: [1, 100_000], iters: [1, 10_000_000], rank: [1, 4096] } as const;

/** Told when a job changes, to push it to subscribers. */
export type JobChanged = (job: JobRecord) => void;

function sameRequest(a: QuantizationRequest, b: QuantizationRequest): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The rules of `quantizeModel` and friends: validate everything a worker would trip over, then
 * write the job and its outbox entry together. Publishing is the dispatcher's job.
 */
export class QuantizationService {
  constructor(
    private readonly registry: RegistryService,
    private readonly jobs: JobRepository,
    private readonly packer: ImageSetPacker,
    private readonly onQueued: () => void,
    private readonly onChanged: JobChanged,
    private readonly logger: Logger,
    /** The rollouts plugin's starter, when it is configured. */
    private readonly rollouts: () => RolloutStarter | undefined,
  ) {}

  async quantize(request: QuantizationRequest, idempotencyKey: string | null, actor: string): Promise<JobRecord> {
    if (idempotencyKey !== null) {
      const existing = await this.jobs.findByIdempotencyKey(idempotencyKey);
      if (existing) return this.repeated(existing, request);
    }
    for (const [field, [min, max]] of Object.entries(SIZE_LIMITS)) {
      const value = request[field as keyof typeof SIZE_LIMITS];
      if (!Number.isInteger(value) || value < min || value > max) throw badInput(`${field} must be an integer in ${min}..${max}; got ${value}`);
    }
    if (!Number.isInteger(request.seed)) throw badInput(`seed must be an integer; got ${request.seed}`);
    if (request.rollout) {
      const rollouts = this.rollouts();
      if (!rollouts) throw badInput('rollout needs the rollouts plugin; add ./plugins/rollouts to GATEWAY_PLUGINS or leave rollout out');
      rollouts.checkPlan(request.rollout);
    }
    const model = await this.registry.getModel(request.model);
    const parent = await this.baseVariant(model, request.baseVariant);
    const pre = model.preprocessing;
    if (request.reference !== undefined && model.task !== 'RETRIEVAL') {
      throw badInput(`reference applies to retrieval models; ${model.name} is a ${model.task.toLowerCase()} model`);
    }
    const calibration = await this.packer.pack(request.calibration, pre, Math.max(request.calibSize, request.reconSize), 'calibration',
      request.reference === 'prototypes' ? 'reference PROTOTYPES (the mean embedding of each class)' : undefined);
    const evaluation = request.evaluation
      ? await this.packer.pack(request.evaluation, pre, undefined, 'evaluation', model.task === 'CLASSIFICATION' ? 'evaluation' : undefined)
      : undefined;
    // The registry should hold the parent's figures on the same images as the variant's.
    const parentEvaluated = (parent.metrics.evaluation as { imagesSha256?: unknown } | undefined)?.imagesSha256;
    const spec: QuantizationJobSpec = {
      jobId: randomUUID(),
      model: { id: model.id, name: model.name, task: model.task, preprocessing: pre },
      parent: { variantId: parent.id, artifactSha256: parent.artifactSha256 },
      method: request.method,
      bits: request.bits,
      calibration,
      calibSize: request.calibSize,
      reconSize: request.reconSize,
      iters: request.iters,
      rank: request.rank,
      seed: request.seed,
      ...(evaluation ? { evaluation, evaluateParent: parentEvaluated !== evaluation.imagesSha256 } : {}),
      ...(request.reference ? { reference: request.reference } : {}),
    };
    let job: JobRecord;
    try {
      job = await this.jobs.create({ spec, request, idempotencyKey, createdBy: actor });
    } catch (error) {
      // Two requests with one key raced past the lookup; the unique index picked the winner.
      const winner = idempotencyKey !== null && /unique|duplicate/i.test(String((error as Error).message))
        ? await this.jobs.findByIdempotencyKey(idempotencyKey)
        : undefined;
      if (winner) return this.repeated(winner, request);
      throw error;
    }
    this.logger.info({ job: job.id, model: model.name, parent: parent.tag, method: request.method, bits: request.bits }, 'quantization job queued');
    this.onQueued();
    this.onChanged(job);
    return job;
  }

  async cancel(id: string, actor: string): Promise<JobRecord> {
    const job = await this.get(id);
    if (job.status !== 'queued' && job.status !== 'running') {
      throw new GatewayError('CONFLICT', `job ${id} is ${job.status}; only queued or running jobs can be cancelled`);
    }
    const cancelled = await this.jobs.finish(id, { status: 'cancelled', reason: `cancelled by ${actor}` }, actor);
    if (!cancelled) return this.cancel(id, actor);
    this.logger.info({ job: id, actor }, 'quantization job cancelled');
    this.onQueued();
    this.onChanged(cancelled);
    return cancelled;
  }

  async get(id: string): Promise<JobRecord> {
    const job = await this.jobs.find(id);
    if (!job) throw notFound(`no quantization job with id ${id}`);
    return job;
  }

  find(id: string): Promise<JobRecord | undefined> {
    return this.jobs.find(id);
  }

  async list(modelName: string | undefined, status: JobStatus | undefined): Promise<JobRecord[]> {
    const modelId = modelName === undefined ? undefined : (await this.registry.getModel(modelName)).id;
    return this.jobs.list({ modelId, status });
  }

  private repeated(existing: JobRecord, request: QuantizationRequest): JobRecord {
    if (!sameRequest(existing.request, request)) {
      throw conflict(`idempotency key "${existing.idempotencyKey}" was used for a different request (job ${existing.id})`);
    }
    return existing;
  }

  /** The named variant, else the model's original upload. */
  private async baseVariant(model: ModelRecord, idOrTag: string | null): Promise<VariantRecord> {
    let variant: VariantRecord | undefined;
    if (idOrTag !== null) {
      variant = await this.registry.resolveVariant(model, idOrTag);
      if (!variant) throw notFound(`model ${model.name} has no variant "${idOrTag}"`);
    } else {
      const variants = await this.registry.listVariants(model.id);
      variant = variants.find((v) => v.parentVariantId === null && v.status === 'ready');
      if (!variant) throw badInput(`model ${model.name} has no ready original variant; name one with baseVariant`);
    }
    if (variant.status !== 'ready') throw badInput(`variant ${variant.tag} is ${variant.status}; only a ready variant can be quantized`);
    return variant;
  }
}
