import { performance } from 'node:perf_hooks';
import { GatewayError } from '../errors';
import { canShareRun, concatRequests, rowsOf, splitOutputs, type BatchingOptions } from './batching';
import { OverloadedError } from './serving-errors';
import type { Tensor } from '../tensors/tensor';
import type { SessionRunResult, WorkerSession } from './worker-session';

export interface RunOutcome {
  outputs: Tensor[];
  computeMs: number;
  /** Rows in the run that served this request (its own and its batch mates'). */
  batchRows: number;
}

interface Job {
  inputs: Tensor[];
  outputNames: string[];
  rows: number;
  enqueuedAt: number;
  resolve(outcome: RunOutcome): void;
  reject(error: Error): void;
}

export interface RunnerOptions {
  label: string;
  /** Requests allowed to wait; more are refused with 429. */
  queueLimit: number;
  batching: BatchingOptions;
  /** Whether the model's inputs and outputs all have a free first dimension. */
  batchable: boolean;
  onRun?: (rows: number, requests: number, computeMs: number) => void;
}

/**
 * The only way into a variant's session: a bounded queue (full → 429), one run at a time, and
 * optional dynamic batching.
 */
export class VariantRunner {
  private readonly queue: Job[] = [];
  private running = false;
  private closing = false;
  private delayTimer: NodeJS.Timeout | undefined;
  private drained: (() => void) | undefined;
  /** Moving average of run time per request, for Retry-After. */
  private msPerRequest = 5;
  private batching: BatchingOptions;

  constructor(
    private readonly session: WorkerSession,
    private readonly options: RunnerOptions,
  ) {
    this.batching = options.batching;
  }

  /** Applies from the next run on, so a policy change never disturbs a run in progress. */
  useBatching(batching: BatchingOptions): void {
    this.batching = batching;
  }

  get depth(): number {
    return this.queue.length;
  }

  get healthy(): boolean {
    return this.session.alive && !this.closing;
  }

  submit(inputs: Tensor[], outputNames: string[]): Promise<RunOutcome> {
    if (this.closing) return Promise.reject(new GatewayError('UNAVAILABLE', `${this.options.label} is being unloaded; retry to reach another variant`));
    if (this.queue.length >= this.options.queueLimit) {
      const seconds = Math.max(1, Math.ceil((this.depth * this.msPerRequest) / 1000));
      return Promise.reject(new OverloadedError(`${this.options.label} has ${this.queue.length} requests waiting (the limit); retry after ${seconds} s`, seconds));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, outputNames, rows: rowsOf(inputs), enqueuedAt: performance.now(), resolve, reject });
      this.pump();
    });
  }

  /** Stops admitting requests, lets every admitted one finish, then releases the session. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.running || this.depth > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await this.session.release();
  }

  private pump(): void {
    if (this.running) return;
    const head = this.queue[0];
    if (!head) {
      this.drained?.();
      return;
    }
    const batching = this.batching;
    const batched = this.options.batchable && batching.maxBatchSize > 1;
    if (batched && !this.closing) {
      const waitedMs = performance.now() - head.enqueuedAt;
      const waitingRows = this.queue.reduce((sum, job) => sum + job.rows, 0);
      if (waitingRows < batching.maxBatchSize && waitedMs < batching.maxQueueDelayMs) {
        this.delayTimer ??= setTimeout(() => {
          this.delayTimer = undefined;
          this.pump();
        }, batching.maxQueueDelayMs - waitedMs);
        return;
      }
    }
    if (this.delayTimer) {
      clearTimeout(this.delayTimer);
      this.delayTimer = undefined;
    }
    const jobs = batched ? this.takeBatch(head, batching.maxBatchSize) : [this.queue.shift() as Job];
    void this.run(jobs);
  }

  /** The head plus compatible followers in arrival order, up to the row limit. */
  private takeBatch(head: Job, maxRows: number): Job[] {
    const jobs: Job[] = [];
    let rows = 0;
    for (let i = 0; i < this.queue.length && rows < maxRows; ) {
      const job = this.queue[i];
      if (jobs.length === 0 || (rows + job.rows <= maxRows && canShareRun(head, job))) {
        jobs.push(job);
        rows += job.rows;
        this.queue.splice(i, 1);
      } else {
        i++;
      }
    }
    return jobs;
  }

  private async run(jobs: Job[]): Promise<void> {
    this.running = true;
    const started = performance.now();
    const rows = jobs.reduce((sum, job) => sum + job.rows, 0);
    let computeMs = 0;
    try {
      const single = jobs.length === 1;
      const inputs = single ? jobs[0].inputs : concatRequests(jobs.map((j) => j.inputs));
      const result: SessionRunResult = await this.session.run(inputs, jobs[0].outputNames);
      computeMs = result.computeMs;
      const parts = single ? [result.outputs] : splitOutputs(result.outputs, jobs.map((j) => j.rows));
      jobs.forEach((job, i) => job.resolve({ outputs: parts[i], computeMs: result.computeMs, batchRows: rows }));
    } catch (error) {
      for (const job of jobs) job.reject(error as Error);
    } finally {
      this.msPerRequest = 0.8 * this.msPerRequest + 0.2 * ((performance.now() - started) / jobs.length);
      this.options.onRun?.(rows, jobs.length, computeMs);
      this.running = false;
      // Let the event loop read newly arrived requests first, so they can join the next batch.
      setImmediate(() => this.pump());
    }
  }
}
