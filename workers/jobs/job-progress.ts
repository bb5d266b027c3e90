/**
 * A job's progress as people read it: one figure for the whole job, made of weighted stages so
 * it never goes back when a stage starts, an ETA from the pace so far, and figures rounded.
 */
import type { EngineProgress, JobProgressEvent, QuantizationJobSpec, WorkerCapabilities } from '../common/jobs/messages';
import type { JobDelivery, WorkerTransport } from '../common/jobs/transport';

export type JobStage = 'fetch' | 'quantize' | 'store' | 'evaluate' | 'evaluate-parent';

/** Methods that only calibrate: their engine part is short next to evaluating a thousand images. */
const CALIBRATION_ONLY = new Set(['RTN', 'CALIB']);

/**
 * Each stage's share of the job, by its usual cost on the demo models: reconstruction dominates
 * a FIMA-Q job; an evaluation pass over the test set takes a few seconds.
 */
function stageWeights(spec: QuantizationJobSpec): [JobStage, number][] {
  const weights: [JobStage, number][] = [['fetch', 1], ['quantize', CALIBRATION_ONLY.has(spec.method) ? 40 : 90], ['store', 1]];
  if (spec.evaluation) weights.push(['evaluate', CALIBRATION_ONLY.has(spec.method) ? 30 : 5]);
  if (spec.evaluation && spec.evaluateParent) weights.push(['evaluate-parent', CALIBRATION_ONLY.has(spec.method) ? 28 : 3]);
  return weights;
}

/** Where each stage starts and how wide it is, in percent of the job. */
export class StagePlan {
  private readonly spans = new Map<JobStage, { start: number; width: number }>();

  constructor(weights: readonly [JobStage, number][]) {
    const total = weights.reduce((sum, [, w]) => sum + w, 0);
    let start = 0;
    for (const [stage, weight] of weights) {
      const width = (100 * weight) / total;
      this.spans.set(stage, { start, width });
      start += width;
    }
  }

  static forJob(spec: QuantizationJobSpec): StagePlan {
    return new StagePlan(stageWeights(spec));
  }

  /** The job's percent done at `percent` (0..100) of `stage`. */
  at(stage: JobStage, percent: number): number {
    const span = this.spans.get(stage);
    if (!span) throw new Error(`stage ${stage} is not part of this job`);
    return span.start + (span.width * Math.max(0, Math.min(100, percent))) / 100;
  }
}

const LOG_LINE_LIMIT = 400;

/** The ETA needs some history before the pace says anything. */
const ETA_AFTER_PERCENT = 1;

export interface ProgressReporterOptions {
  transport: WorkerTransport;
  capabilities: WorkerCapabilities;
  /** Least time between two progress events of one job (stage and block changes, milestones always go out). */
  intervalMs: number;
  onPublishFailed: (error: unknown, jobId: string) => void;
}

/** Progress of one delivery: monotonic, rate-limited events with an ETA from the observed pace. */
export class ProgressReporter {
  private lastSentAt = 0;
  private lastStage = '';
  private lastBlock: number | undefined;
  private highest = 0;
  private readonly startedAt = Date.now();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly delivery: JobDelivery,
    private readonly options: ProgressReporterOptions,
  ) {}

  /** `progress.progress` is already the job's percent (see StagePlan). */
  report(progress: EngineProgress): void {
    const now = Date.now();
    this.highest = Math.max(this.highest, Math.min(100, progress.progress));
    const changed = progress.stage !== this.lastStage || progress.block !== this.lastBlock;
    if (!changed && !progress.milestone && now - this.lastSentAt < this.options.intervalMs && this.highest < 100) return;
    this.lastStage = progress.stage;
    this.lastBlock = progress.block;
    this.lastSentAt = now;
    const elapsed = (now - this.startedAt) / 1000;
    const done = this.highest;
    const etaSeconds = done >= 100 ? 0 : done >= ETA_AFTER_PERCENT ? Math.round((elapsed * (100 - done)) / done) : undefined;
    const event: JobProgressEvent = {
      kind: 'progress',
      jobId: this.delivery.spec.jobId,
      attempt: this.delivery.attempt,
      worker: this.options.capabilities,
      stage: progress.stage,
      block: progress.block,
      blocks: progress.blocks,
      iteration: progress.iteration,
      iterations: progress.iterations,
      progress: Math.round(done * 10) / 10,
      etaSeconds,
      message: progress.message?.slice(0, LOG_LINE_LIMIT),
      at: new Date(now).toISOString(),
    };
    // Events go out in order; a lost progress event is harmless, so failures are only logged.
    this.pending = this.pending
      .then(() => this.options.transport.publishProgress(event))
      .catch((error: unknown) => this.options.onPublishFailed(error, event.jobId));
  }

  flushed(): Promise<void> {
    return this.pending;
  }
}
