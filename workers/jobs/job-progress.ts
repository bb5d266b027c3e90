/**
 * A job's progress as people read it: the share of its time spent so far and an ETA, both from
 * its stages and the pace each has shown (job-eta.ts), the share never lower than an earlier
 * figure, and figures rounded.
 */
import type { JobProgressEvent, QuantizationJobSpec, WorkerCapabilities } from '../common/jobs/messages';
import type { JobDelivery, WorkerTransport } from '../common/jobs/transport';
import type { StageWork } from '../engine/work';
import type { EngineReport } from './engine';
import { EtaModel } from './job-eta';

/**
 * Estimated cost of evaluating one image on the reference machine (see StageWork): the demo
 * sample's 1,000 test images take under half a second on onnxruntime, the session's load included.
 */
const EVALUATION_IMAGE_SECONDS = 0.0004;
/** An engine that reports no stages (a stand-in) counts as one stage of 100 percent points. */
const ENGINE_PERCENT_SECONDS = 1;
/** The gateway registers the variant after the worker's last event: the job ends about a second later. */
const REGISTER_SECONDS = 1;

export type EvaluationStage = 'evaluate' | 'evaluate-parent';

/**
 * The job's stages: the engine's as it reports them, the evaluations the job asks for, and the
 * gateway's registering of the variant. Fetching and storing are left out: short waits on
 * storage, whose pace says nothing of the rest.
 */
export class JobPlan {
  private engine: readonly StageWork[] = [];
  private readonly evaluations: StageWork[];
  private done = false;

  constructor(spec: QuantizationJobSpec) {
    const stages: EvaluationStage[] = !spec.evaluation ? [] : spec.evaluateParent ? ['evaluate', 'evaluate-parent'] : ['evaluate'];
    this.evaluations = stages.map((stage) => ({ stage, done: 0, total: spec.evaluation?.count ?? 0, unitSeconds: EVALUATION_IMAGE_SECONDS }));
  }

  engineReported(report: EngineReport): void {
    this.engine = report.work ?? [{ stage: 'quantize', done: report.progress, total: 100, unitSeconds: ENGINE_PERCENT_SECONDS }];
  }

  /** The engine returned: all of its work is done, whatever it last reported. */
  engineFinished(): void {
    this.engine = this.engine.map((w) => ({ ...w, done: w.total }));
  }

  evaluated(stage: EvaluationStage, done: number, total: number): void {
    this.evaluations.forEach((w, i) => {
      if (w.stage === stage) this.evaluations[i] = { ...w, done, total };
    });
  }

  finish(): void {
    this.done = true;
  }

  get finished(): boolean {
    return this.done;
  }

  work(): readonly StageWork[] {
    return [...this.engine, ...this.evaluations, { stage: 'register', done: this.done ? 1 : 0, total: 1, unitSeconds: REGISTER_SECONDS }];
  }
}

const LOG_LINE_LIMIT = 400;

export interface ProgressReporterOptions {
  transport: WorkerTransport;
  capabilities: WorkerCapabilities;
  /** Least time between two progress events of one job (stage and block changes, milestones always go out). */
  intervalMs: number;
  onPublishFailed: (error: unknown, jobId: string) => void;
  /** The clock, in ms (Date.now; tests pass a fake one). */
  now: () => number;
}

/** Where a job stands, as the runtime reports it; the reporter adds the percent and the ETA. */
export type JobUpdate = Omit<JobProgressEvent, 'kind' | 'jobId' | 'attempt' | 'worker' | 'at' | 'progress' | 'etaSeconds'>;

/** Highest percent before the job has finished: the last stage's end is not the job's. */
const UNFINISHED_CEILING = 99.9;

/** Progress of one delivery: monotonic, rate-limited events with an ETA from each stage's pace. */
export class ProgressReporter {
  private lastSentAt = 0;
  private lastStage = '';
  private lastBlock: number | undefined;
  private highest = 0;
  private readonly startedAt: number;
  private readonly eta = new EtaModel();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly delivery: JobDelivery,
    private readonly plan: JobPlan,
    private readonly options: ProgressReporterOptions,
  ) {
    this.startedAt = options.now();
  }

  /** Call after updating the plan: the percent and the ETA come from its stages. */
  report(progress: JobUpdate): void {
    const now = this.options.now();
    this.eta.update(now, this.plan.work());
    const remaining = this.plan.finished ? 0 : this.eta.remainingSeconds();
    const elapsed = (now - this.startedAt) / 1000;
    // The share of the job's time spent: elapsed over elapsed plus what is left.
    const share = this.plan.finished ? 100 : remaining === undefined ? 0 : Math.min(UNFINISHED_CEILING, (100 * elapsed) / Math.max(elapsed + remaining, 1e-9));
    this.highest = Math.max(this.highest, share);
    const changed = progress.stage !== this.lastStage || progress.block !== this.lastBlock;
    if (!changed && !progress.milestone && now - this.lastSentAt < this.options.intervalMs && !this.plan.finished) return;
    this.lastStage = progress.stage;
    this.lastBlock = progress.block;
    this.lastSentAt = now;
    const etaSeconds = remaining === undefined ? undefined : Math.round(remaining);
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
      progress: Math.round(this.highest * 10) / 10,
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
