/**
 * Runs jobs from a transport: fetch the parent and the calibration set, run the engine with
 * heartbeats and progress, store the result, report it, acknowledge. The same runtime serves
 * the NATS worker fleet and the embedded child-process worker.
 */
import type { Logger } from 'pino';
import { openDataset } from '../data';
import { evaluateModel, OnnxImageModel } from '../eval';
import type { JobResultEvent, QuantizationJobSpec, WorkerCapabilities } from '../common/jobs/messages';
import type { QuantizationEngine } from './engine';
import type { JobDelivery, WorkerTransport } from '../common/jobs/transport';
import { JobPlan, ProgressReporter, type EvaluationStage, type JobUpdate } from './job-progress';

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

type SucceededEvent = Extract<JobResultEvent, { outcome: 'succeeded' }>;

/** The job's last progress line: what it produced and, with an evaluation set, how it scored. */
function finishedLine(event: SucceededEvent): string {
  const size = `${(event.artifactSize / 1024).toFixed(0)} KiB`;
  const form = (event.config.exportForm as { form?: string } | undefined)?.form;
  return `finished: quantized model stored (${size}${form ? `, served in form '${form}'` : ''}); the gateway registers the variant next`;
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
    const plan = new JobPlan(spec);
    const progress = new ProgressReporter(delivery, plan, {
      transport,
      capabilities: this.options.capabilities,
      intervalMs: this.options.progressIntervalMs,
      onPublishFailed: (error, job) => log.warn({ err: error, job }, 'progress event not published'),
      now: Date.now,
    });
    // The engine calls this often; throwing here is how a cancellation or a shutdown stops it.
    const onProgress = (p: JobUpdate) => {
      if (interruption) throw interruption;
      progress.report(p);
    };

    log.info('job started');
    try {
      onProgress({ stage: 'fetch', message: `attempt ${attempt} on ${this.options.capabilities.workerId}` });
      const event = await this.quantize(spec, delivery.attempt, plan, onProgress);
      plan.finish();
      onProgress({ stage: 'finished', milestone: true, message: finishedLine(event) });
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

  private async quantize(spec: QuantizationJobSpec, attempt: number, plan: JobPlan, onProgress: (p: JobUpdate) => void): Promise<SucceededEvent> {
    const { artifacts } = this.options.transport;
    const model = await transient('fetching the parent model', () => artifacts.read(spec.parent.artifactSha256));
    const calibrationPath = await transient('fetching the calibration set', () => artifacts.localPath(spec.calibration.imagesSha256));
    const labelsSha256 = spec.calibration.labelsSha256;
    const calibrationLabelsPath = spec.reference === 'prototypes' && labelsSha256
      ? await transient('fetching the calibration labels', () => artifacts.localPath(labelsSha256))
      : undefined;
    onProgress({ stage: 'fetch' });
    const output = await this.options.engine({
      model,
      modelName: `${spec.model.name}@${spec.parent.variantId}`,
      preprocessing: spec.model.preprocessing,
      task: spec.model.task,
      calibrationPath,
      calibrationLabelsPath,
      reference: spec.reference,
      bits: spec.bits.toLowerCase(),
      method: spec.method.toLowerCase(),
      calibSize: spec.calibSize,
      reconSize: spec.reconSize,
      iters: spec.iters,
      rank: spec.rank,
      seed: spec.seed,
      onProgress: (p) => {
        plan.engineReported(p);
        onProgress(p);
      },
    });
    plan.engineFinished();
    onProgress({ stage: 'store' });
    const stored = await transient('storing the quantized model', () => artifacts.put(Buffer.from(output.onnx)));
    const evaluated = (stage: EvaluationStage) => (done: number, total: number) => {
      plan.evaluated(stage, done, total);
      onProgress({ stage });
    };
    const metrics = spec.evaluation ? await this.evaluate(spec, await artifacts.localPath(stored.sha256), evaluated('evaluate')) : {};
    const parentMetrics = spec.evaluation && spec.evaluateParent
      ? await this.evaluate(spec, await artifacts.localPath(spec.parent.artifactSha256), evaluated('evaluate-parent'))
      : undefined;
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
      ...(parentMetrics ? { parentMetrics } : {}),
      at: new Date().toISOString(),
    };
  }

  /** A model's figures on the job's evaluation set, for its variant's record: what was measured, on which images. */
  private async evaluate(spec: QuantizationJobSpec, modelPath: string, onImages: (done: number, total: number) => void): Promise<Record<string, unknown>> {
    const set = spec.evaluation as NonNullable<QuantizationJobSpec['evaluation']>;
    const { artifacts } = this.options.transport;
    const imagesPath = await transient('fetching the evaluation set', () => artifacts.localPath(set.imagesSha256));
    const labelsPath = set.labelsSha256 ? await transient('fetching the evaluation labels', () => artifacts.localPath(set.labelsSha256 as string)) : undefined;
    const data = await openDataset({ path: imagesPath, format: 'npy', labelsPath }, spec.model.preprocessing);
    const model = await OnnxImageModel.load(modelPath);
    try {
      const result = await evaluateModel({
        model,
        pre: spec.model.preprocessing,
        task: spec.model.task === 'CLASSIFICATION' ? 'classification' : 'retrieval',
        data,
        onProgress: (p) => onImages(p.done, p.total),
      });
      return {
        ...result,
        evaluationImages: data.size,
        evaluation: { data: set.description ?? 'the job\'s evaluation set', images: data.size, imagesSha256: set.imagesSha256, measuredBy: `quantization job ${spec.jobId}` },
      };
    } finally {
      await model.close();
    }
  }
}
