/**
 * The two ends of a job transport. The control plane publishes jobs and consumes what workers
 * report; a worker pulls jobs and reports. NATS JetStream and the embedded (in-process queue,
 * child-process worker) transports implement both ends with the same guarantees the worker
 * runtime and the plugin rely on: at-least-once delivery of jobs and events, dedupe of a
 * job published twice, redelivery of a job whose worker died.
 */
import type { ArtifactStore } from '../artifacts/artifact-store';
import type { JobEvent, JobProgressEvent, JobResultEvent, QuantizationJobSpec } from './messages';

/** Called for every event; the event is acknowledged only when the promise resolves. */
export type JobEventHandler = (event: JobEvent) => Promise<void>;

export interface ControlPlaneTransport {
  /** Where workers read parents and calibration sets and write results. */
  readonly artifacts: ArtifactStore;
  /**
   * Whether published jobs outlive the control-plane process. When false, the plugin
   * republishes unfinished jobs on start.
   */
  readonly durable: boolean;
  start(onEvent: JobEventHandler): Promise<void>;
  /** Publishing the same job id twice delivers it once. */
  publish(spec: QuantizationJobSpec): Promise<void>;
  /** Asks whoever holds the job (queue or worker) to drop it. */
  cancel(jobId: string): Promise<void>;
  stop(): Promise<void>;
}

/** One delivery of a job to a worker. */
export interface JobDelivery {
  readonly spec: QuantizationJobSpec;
  /** 1 on the first delivery. */
  readonly attempt: number;
  /** Tells the transport the job is still being worked on, so it is not redelivered. */
  working(): void;
  /** Done (succeeded, failed for good, or cancelled): never deliver again. */
  ack(): Promise<void>;
  /** Deliver again later, to this or another worker. */
  retryLater(delayMs: number): Promise<void>;
}

export interface WorkerTransport {
  readonly artifacts: ArtifactStore;
  /** The next job, or undefined once `signal` aborts. */
  nextJob(signal: AbortSignal): Promise<JobDelivery | undefined>;
  isCancelled(jobId: string): Promise<boolean>;
  publishProgress(event: JobProgressEvent): Promise<void>;
  publishResult(event: JobResultEvent): Promise<void>;
  close(): Promise<void>;
}
