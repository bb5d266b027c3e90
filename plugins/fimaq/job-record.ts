import type { RolloutPlanInput } from '../../schema/rollouts';
import type { BitsName, RetrievalReference, JobStatus, QuantizationJobSpec, QuantizationMethod, WorkerCapabilities } from '../../workers/common/jobs/messages';

/** Where a packed image set came from, as the user named it. */
export interface ImageSetSource {
  path?: string;
  artifactSha256?: string;
  format?: string;
  split?: string;
}

/** A `quantizeModel` input after defaults: what the idempotency key stands for. */
export interface QuantizationRequest {
  model: string;
  baseVariant: string | null;
  method: QuantizationMethod;
  bits: BitsName;
  calibration: ImageSetSource;
  calibSize: number;
  reconSize: number;
  iters: number;
  rank: number;
  seed: number;
  evaluation: ImageSetSource | null;
  shadow: boolean;
  /** A rollout plan to start when the job's variant is ready (the rollouts plugin runs it); absent: none. */
  rollout?: RolloutPlanInput;
  /** Retrieval models only; absent means the default (gallery), so earlier requests compare equal. */
  reference?: RetrievalReference;
}

export interface JobRecord {
  id: string;
  modelId: string;
  parentVariantId: string;
  idempotencyKey: string | null;
  request: QuantizationRequest;
  spec: QuantizationJobSpec;
  status: JobStatus;
  stage: string | null;
  /** The model block being worked on (1-based) and how many the model has, in every stage that goes block by block. */
  block: number | null;
  blocks: number | null;
  /** The iteration within the current block (reconstruction) and how many it runs. */
  iteration: number | null;
  iterations: number | null;
  /** 0..100, never lower than an earlier figure of the same attempt. */
  progress: number;
  etaSeconds: number | null;
  /** Delivery attempt that last reported. */
  attempt: number;
  worker: WorkerCapabilities | null;
  /** The last progress messages, oldest first. */
  log: string[];
  /** Why the job failed or was cancelled. */
  reason: string | null;
  variantId: string | null;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface OutboxEntry {
  id: number;
  jobId: string;
  kind: 'dispatch' | 'cancel';
  attempts: number;
}
