import type { Logger } from 'pino';
import type { ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import type { QuantizationJobSpec } from '../../workers/common/jobs/messages';
import type { ControlPlaneTransport } from '../../workers/common/jobs/transport';
import type { OutboxEntry } from './job-record';
import type { JobRepository } from './job-repository';

const BATCH = 32;
const MAX_BACKOFF_MS = 30_000;

/** Every artifact a worker will fetch for a job. */
function artifactsOf(spec: QuantizationJobSpec): string[] {
  return [
    spec.parent.artifactSha256,
    spec.calibration.imagesSha256,
    spec.calibration.labelsSha256,
    spec.evaluation?.imagesSha256,
    spec.evaluation?.labelsSha256,
  ].filter((sha): sha is string => sha !== undefined);
}

/**
 * Drains the job outbox into the transport: copies the job's artifacts to where workers read
 * them, publishes, and only then deletes the entry. A crash in between publishes again on the
 * next pass, which the transport's dedupe on job id makes harmless. Failed entries wait with
 * a growing backoff while the transport is down.
 */
export class OutboxDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly jobs: JobRepository,
    private readonly transport: ControlPlaneTransport,
    private readonly gatewayArtifacts: ArtifactStore,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.kick();
  }

  /** Runs a pass now (after a mutation) rather than on the next tick. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'job outbox pass failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private async drain(): Promise<void> {
    for (;;) {
      const entries = await this.jobs.dueOutbox(BATCH);
      if (entries.length === 0 || this.stopped) return;
      let progressed = false;
      for (const entry of entries) {
        if (this.stopped) return;
        try {
          await this.deliver(entry);
          await this.jobs.completeOutbox(entry.id);
          progressed = true;
        } catch (error) {
          const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(entry.attempts, 10));
          this.logger.warn({ err: error, job: entry.jobId, kind: entry.kind, retryInMs: delay }, 'job outbox entry not delivered; will retry');
          await this.jobs.deferOutbox(entry.id, (error as Error).message, new Date(Date.now() + delay));
        }
      }
      if (!progressed) return;
    }
  }

  private async deliver(entry: OutboxEntry): Promise<void> {
    if (entry.kind === 'cancel') {
      await this.transport.cancel(entry.jobId);
      return;
    }
    const job = await this.jobs.find(entry.jobId);
    if (!job || (job.status !== 'queued' && job.status !== 'running')) return;
    if (this.transport.artifacts !== this.gatewayArtifacts) {
      for (const sha256 of artifactsOf(job.spec)) {
        if (!(await this.transport.artifacts.has(sha256))) await this.transport.artifacts.put(await this.gatewayArtifacts.read(sha256));
      }
    }
    await this.transport.publish(job.spec);
  }
}
