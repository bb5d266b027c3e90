/**
 * Runs jobs from a transport: fetch the parent and the calibration set, run the engine with
 * heartbeats and progress, store the result, report it, acknowledge. The same runtime serves
 * the NATS worker fleet and the embedded child-process worker.
 */
import type { Logger } from 'pino';
import { openDataset } from '../data';
import { evaluateModel, OnnxImageModel } from '../eval';
import type { JobProgressEvent, JobResultEvent, QuantizationJobSpec, WorkerCapabilities } from '../common/jobs/messages';
import type { EngineProgress, QuantizationEngine } from './engine';
import type { JobDelivery, WorkerTransport } from '../common/jobs/transport';

export interface WorkerRuntimeOptions {
  transport: WorkerTransport;
  engine: QuantizationEngine;
  capabilities: WorkerCapabilities;
  logger: Logger;
  /** Jobs run at once (one per GPU is the sensible setting). */
  concurrency: number;
  /** Deliveries of one job before it fails for good. */
  maxAttempts: number;
  /** How often a running job tells the transport it is alive and checks for cancellation. */
  heartbeatMs: number;
  /** Delay before a job that failed on a transient error (storage, network) is offered again. */
  retryDelayMs: number;
  /** Least time between two progress events of one job (stage changes always go out). */
  progressIntervalMs: number;
}

/** Why a running job was interrupted from outside. */
class JobInterrupted extends Error {
  constructor(readonly why: 'cancelled' | 'shutdown') {
    super(why === 'cancelled' ? 'cancelled by request' : 'worker shutting down');
  }
}

/** A failure worth retrying elsewhere or later (storage, network), as opposed to one the input causes. */
class TransientJobError extends Error {}

async function transient<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw new TransientJobError(`${what}: ${(error as Error).message}`);
  }
}

const LOG_LINE_LIMIT = 400;

/** Progress of one delivery: rate-limited events with an ETA from the observed pace. */
class ProgressReporter {
  private lastSentAt = 0;
  private lastStage = '';
  private readonly startedAt = Date.now();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly delivery: JobDelivery,
    private readonly runtime: WorkerRuntimeOptions,
  ) {}

  report(progress: EngineProgress): void {
    const now = Date.now();
    if (progress.stage === this.lastStage && now - this.lastSentAt < this.runtime.progressIntervalMs && progress.progress < 100) return;
    this.lastStage = progress.stage;
    this.lastSentAt = now;
    const elapsed = (now - this.startedAt) / 1000;
    const etaSeconds = progress.etaSeconds
      ?? (progress.progress > 0 && progress.progress < 100 ? (elapsed * (100 - progress.progress)) / progress.progress : undefined);
    const event: JobProgressEvent = {
      kind: 'progress',
      jobId: this.delivery.spec.jobId,
      attempt: this.delivery.attempt,
      worker: this.runtime.capabilities,
      stage: progress.stage,
      block: progress.block,
      blocks: progress.blocks,
      progress: Math.max(0, Math.min(100, progress.progress)),
      etaSeconds,
      message: progress.message?.slice(0, LOG_LINE_LIMIT),
      at: new Date(now).toISOString(),
    };
    // Events go out in order; a lost progress event is harmless, so failures are only logged.
    this.pending = this.pending
      .then(() => this.runtime.transport.publishProgress(event))
      .catch((error: unknown) => this.runtime.logger.warn({ err: error, job: event.jobId }, 'progress event not published'));
  }

  flushed(): Promise<void> {
    return this.pending;
  }
}

export class WorkerRuntime {
  private readonly stopping = new AbortController();
  private readonly running = new Map<string, { interrupt: (why: 'shutdown') => void }>();
  private loops: Promise<void>[] = [];

  constructor(private readonly options: WorkerRuntimeOptions) {}

  start(): void {
    this.loops = Array.from({ length: this.options.concurrency }, (_, slot) => this.loop(slot));
  }

  /**
   * Stops pulling, lets running jobs finish for up to `graceMs`, then hands the rest back to
   * the transport for another worker.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping.abort();
    const finished = Promise.all(this.loops);
    const timer = setTimeout(() => {
      for (const job of this.running.values()) job.interrupt('shutdown');
    }, graceMs);
    await finished;
    clearTimeout(timer);
  }

  private async loop(slot: number): Promise<void> {
    while (!this.stopping.signal.aborted) {
      const delivery = await this.options.transport.nextJob(this.stopping.signal);
      if (!delivery) break;
      try {
        await this.run(delivery);
      } catch (error) {
        this.options.logger.error({ err: error, slot, job: delivery.spec.jobId }, 'job bookkeeping failed; the job will be redelivered');
      }
    }
  }

  private result(delivery: JobDelivery, outcome: 'failed' | 'cancelled', reason: string): JobResultEvent {
    return {
      kind: 'result',
      outcome,
      jobId: delivery.spec.jobId,
      attempt: delivery.attempt,
      worker: this.options.capabilities,
      reason,
      at: new Date().toISOString(),
    };
  }

  private async finish(delivery: JobDelivery, event: JobResultEvent): Promise<void> {
    await this.options.transport.publishResult(event);
    await delivery.ack();
  }

  private async run(delivery: JobDelivery): Promise<void> {
    const { spec, attempt } = delivery;
    const { transport, logger, maxAttempts } = this.options;
    const log = logger.child({ job: spec.jobId, attempt });
    if (attempt > maxAttempts) {
      log.warn('job gave up after too many deliveries');
      await this.finish(delivery, this.result(delivery, 'failed',
        `gave up after ${maxAttempts} deliveries: earlier attempts never finished (worker crashed or lost its connection)`));
      return;
    }
    if (await transport.isCancelled(spec.jobId)) {
      await this.finish(delivery, this.result(delivery, 'cancelled', 'cancelled before it started'));
      return;
    }

    let interruption: JobInterrupted | undefined;
    const interrupt = (why: 'cancelled' | 'shutdown') => {
      interruption ??= new JobInterrupted(why);
    };
    this.running.set(spec.jobId, { interrupt });
    const heartbeat = setInterval(() => {
      delivery.working();
      transport.isCancelled(spec.jobId).then(
        (cancelled) => cancelled && interrupt('cancelled'),
        () => undefined,
      );
    }, this.options.heartbeatMs);
    const progress = new ProgressReporter(delivery, this.options);
    // The engine calls this often; throwing here is how a cancellation or a shutdown stops it.
    const onProgress = (p: EngineProgress) => {
      if (interruption) throw interruption;
      progress.report(p);
    };

    log.info('job started');
    try {
      onProgress({ stage: 'fetch', progress: 0, message: `attempt ${attempt} on ${this.options.capabilities.workerId}` });
      const event = await this.quantize(spec, delivery.attempt, onProgress);
      await progress.flushed();
      await this.finish(delivery, event);
      log.info({ sha256: event.outcome === 'succeeded' ? event.artifactSha256 : undefined }, 'job succeeded');
    } catch (error) {
      await progress.flushed();
      if (error instanceof JobInterrupted) {
        if (error.why === 'shutdown') {
          log.info('job handed back: worker shutting down');
          await delivery.retryLater(0);
        } else {
          log.info('job cancelled while running');
          await this.finish(delivery, this.result(delivery, 'cancelled', 'cancelled while running'));
        }
      } else if (error instanceof TransientJobError && attempt < maxAttempts) {
        log.warn({ err: error }, 'job hit a transient error; retrying later');
        await delivery.retryLater(this.options.retryDelayMs);
      } else {
        const reason = (error as Error).message.split('\n')[0];
        log.warn({ err: error }, 'job failed');
        await this.finish(delivery, this.result(delivery, 'failed', reason));
      }
    } finally {
      clearInterval(heartbeat);
      this.running.delete(spec.jobId);
    }
  }

  private async quantize(spec: QuantizationJobSpec, attempt: number, onProgress: (p: EngineProgress) => void): Promise<JobResultEvent> {
    const { artifacts } = this.options.transport;
    const model = await transient('fetching the parent model', () => artifacts.read(spec.parent.artifactSha256));
    const calibrationPath = await transient('fetching the calibration set', () => artifacts.localPath(spec.calibration.imagesSha256));
    onProgress({ stage: 'fetch', progress: 1 });
    const output = await this.options.engine({
      model,
      modelName: `${spec.model.name}@${spec.parent.variantId}`,
      preprocessing: spec.model.preprocessing,
      task: spec.model.task,
      calibrationPath,
      bits: spec.bits.toLowerCase(),
      method: spec.method.toLowerCase(),
      calibSize: spec.calibSize,
      reconSize: spec.reconSize,
      iters: spec.iters,
      rank: spec.rank,
      seed: spec.seed,
      onProgress,
    });
    const stored = await transient('storing the quantized model', () => artifacts.put(Buffer.from(output.onnx)));
    const metrics = spec.evaluation ? await this.evaluate(spec, stored.sha256, onProgress) : {};
    return {
      kind: 'result',
      outcome: 'succeeded',
      jobId: spec.jobId,
      attempt,
      worker: this.options.capabilities,
      artifactSha256: stored.sha256,
      artifactSize: stored.size,
      config: output.config,
      metrics,
      at: new Date().toISOString(),
    };
  }

  /** The quantized model's figures on the job's evaluation set, for the variant's record. */
  private async evaluate(spec: QuantizationJobSpec, sha256: string, onProgress: (p: EngineProgress) => void): Promise<Record<string, unknown>> {
    const set = spec.evaluation as NonNullable<QuantizationJobSpec['evaluation']>;
    const { artifacts } = this.options.transport;
    const imagesPath = await transient('fetching the evaluation set', () => artifacts.localPath(set.imagesSha256));
    const labelsPath = set.labelsSha256 ? await transient('fetching the evaluation labels', () => artifacts.localPath(set.labelsSha256 as string)) : undefined;
    const data = await openDataset({ path: imagesPath, format: 'npy', labelsPath }, spec.model.preprocessing);
    const model = await OnnxImageModel.load(await artifacts.localPath(sha256));
    try {
      const result = await evaluateModel({
        model,
        pre: spec.model.preprocessing,
        task: spec.model.task === 'CLASSIFICATION' ? 'classification' : 'retrieval',
        data,
        onProgress: (p) => onProgress({ stage: `evaluate:${p.stage}`, progress: 100 * (p.total ? p.done / p.total : 0) }),
      });
      return { ...result, evaluationImages: data.size };
    } finally {
      await model.close();
    }
  }
}
