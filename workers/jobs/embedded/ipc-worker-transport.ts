import type { ArtifactStore } from '../../common/artifacts/artifact-store';
import type { JobProgressEvent, JobResultEvent } from '../../common/jobs/messages';
import type { JobDelivery, WorkerTransport } from '../../common/jobs/transport';
import type { HostToWorkerMessage, WorkerToHostMessage } from '../../common/jobs/ipc-messages';

/**
 * The embedded worker's end: a child process of the gateway that asks its parent for jobs over
 * the IPC channel and shares the gateway's artifact files.
 */
export class IpcWorkerTransport implements WorkerTransport {
  private readonly cancelled = new Set<string>();
  private readonly waiting: Array<(delivery: JobDelivery | undefined) => void> = [];
  private readonly onMessage = (message: HostToWorkerMessage) => {
    if (message.type === 'cancel') this.cancelled.add(message.jobId);
    else this.waiting.shift()?.(this.delivery(message.spec, message.attempt));
  };

  constructor(readonly artifacts: ArtifactStore) {
    if (!process.send) throw new Error('the embedded worker transport needs an IPC channel (start the worker with child_process.fork)');
    process.on('message', this.onMessage);
  }

  private send(message: WorkerToHostMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      process.send?.(message, undefined, {}, (error) => (error ? reject(error) : resolve()));
    });
  }

  private delivery(spec: JobDelivery['spec'], attempt: number): JobDelivery {
    return {
      spec,
      attempt,
      // The host sees the process itself; a dead worker needs no missed heartbeat to be noticed.
      working: () => undefined,
      ack: () => this.send({ type: 'ack', jobId: spec.jobId }),
      retryLater: (delayMs) => this.send({ type: 'retry', jobId: spec.jobId, delayMs }),
    };
  }

  nextJob(signal: AbortSignal): Promise<JobDelivery | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter = (delivery: JobDelivery | undefined) => {
        signal.removeEventListener('abort', onAbort);
        resolve(delivery);
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
      void this.send({ type: 'pull' });
    });
  }

  async isCancelled(jobId: string): Promise<boolean> {
    return this.cancelled.has(jobId);
  }

  publishProgress(event: JobProgressEvent): Promise<void> {
    return this.send({ type: 'event', event });
  }

  publishResult(event: JobResultEvent): Promise<void> {
    return this.send({ type: 'event', event });
  }

  async close(): Promise<void> {
    process.off('message', this.onMessage);
  }
}
