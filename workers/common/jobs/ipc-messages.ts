/** What the gateway and its embedded worker process say to each other over the IPC channel. */
import type { JobEvent, QuantizationJobSpec } from './messages';

export type WorkerToHostMessage =
  | { type: 'pull' }
  | { type: 'ack'; jobId: string }
  | { type: 'retry'; jobId: string; delayMs: number }
  | { type: 'event'; event: JobEvent };

export type HostToWorkerMessage =
  | { type: 'job'; spec: QuantizationJobSpec; attempt: number }
  | { type: 'cancel'; jobId: string };
