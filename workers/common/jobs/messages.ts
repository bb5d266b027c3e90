/**
 * The job contract between the control plane (plugins/fimaq) and the quantization workers:
 * what a job asks for, what a worker reports back, and the decoders both sides use on the
 * wire. Pure module: no I/O, no gateway imports.
 */
import type { Preprocessing } from '../preprocessing';

/**
 * The methods a job may ask for: the upper-case names of `fimaq quantize --method`
 * (workers/quantization.ts's ALL_METHODS; test/cli/methods.test.ts keeps the two lists equal).
 */
export const QUANTIZATION_METHODS = ['FIMAQ', 'RTN', 'CALIB', 'MSE', 'FISHER_DIAG', 'FISHER_LR', 'FISHER_BRECQ', 'FISHER_DPLR'] as const;
export type QuantizationMethod = (typeof QUANTIZATION_METHODS)[number];

/** Weight/activation bit widths the engine supports, by their precision name. */
export const SUPPORTED_BITS = { W8A8: [8, 8], W6A6: [6, 6], W4A8: [4, 8], W4A4: [4, 4], W3A3: [3, 3] } as const;
export type BitsName = keyof typeof SUPPORTED_BITS;

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** A packed image set the worker fetches from the artifact store (float32 NPY in [0, 1], NHWC). */
export interface ImageSetArtifact {
  imagesSha256: string;
  /** An NPY of int32 labels, when the set has labels (evaluation sets do). */
  labelsSha256?: string;
  count: number;
  /** Where the images came from, as the user named them (recorded with the figures measured on them). */
  description?: string;
}

/** Everything a worker needs to run one job; it reads nothing else from the control plane. */
export interface QuantizationJobSpec {
  jobId: string;
  model: { id: string; name: string; task: 'CLASSIFICATION' | 'RETRIEVAL'; preprocessing: Preprocessing };
  parent: { variantId: string; artifactSha256: string };
  method: QuantizationMethod;
  bits: BitsName;
  calibration: ImageSetArtifact;
  calibSize: number;
  reconSize: number;
  iters: number;
  rank: number;
  seed: number;
  evaluation?: ImageSetArtifact;
  /** Retrieval models: what the reconstruction's logits compare embeddings with (default gallery). */
  reference?: RetrievalReference;
  /** Evaluate the parent on `evaluation` too: it has no figures for that set yet. */
  evaluateParent?: boolean;
}

/** gallery: the FP embeddings of the reconstruction images; prototypes: each class's mean FP embedding (needs labels). */
export const RETRIEVAL_REFERENCES = ['gallery', 'prototypes'] as const;
export type RetrievalReference = (typeof RETRIEVAL_REFERENCES)[number];

/** The machine a job runs on, reported with every event so the job shows where it ran. */
export interface WorkerCapabilities {
  workerId: string;
  host: string;
  /** tfjs backend in use: tensorflow-gpu, tensorflow, wasm or cpu. */
  backend: string;
  device: string;
  concurrency: number;
}

/** Where a running quantization stands, as the engine reports it. */
export interface EngineProgress {
  stage: string;
  /** The model block being worked on (1-based) and how many there are; never other counts. */
  block?: number;
  blocks?: number;
  /** The iteration within the current block and how many it runs (reconstruction). */
  iteration?: number;
  iterations?: number;
  /** 0..100 of the whole job (the worker weights the stages); one decimal. */
  progress: number;
  /** Whole seconds left in the job, from the pace of each of its stages (the worker's figure). */
  etaSeconds?: number;
  message?: string;
  /** Always reported, even between rate-limited events (a block's outcome, the job's end). */
  milestone?: boolean;
}

export interface JobProgressEvent extends EngineProgress {
  kind: 'progress';
  jobId: string;
  /** 1 for the first delivery; larger after a redelivery. */
  attempt: number;
  worker: WorkerCapabilities;
  at: string;
}

export type JobResultEvent =
  | {
      kind: 'result';
      outcome: 'succeeded';
      jobId: string;
      attempt: number;
      worker: WorkerCapabilities;
      artifactSha256: string;
      artifactSize: number;
      /** The engine's configuration as run, recorded on the variant. */
      config: Record<string, unknown>;
      /** The worker's evaluation figures, when the job had an evaluation set. */
      metrics: Record<string, unknown>;
      /** The parent's figures on the same set, when the job was asked to measure them. */
      parentMetrics?: Record<string, unknown>;
      at: string;
    }
  | {
      kind: 'result';
      outcome: 'failed' | 'cancelled';
      jobId: string;
      attempt: number;
      worker: WorkerCapabilities;
      reason: string;
      at: string;
    };

export type JobEvent = JobProgressEvent | JobResultEvent;

export class JobMessageError extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireFields(value: unknown, fields: readonly string[], what: string): Record<string, unknown> {
  if (!isRecord(value)) throw new JobMessageError(`${what} is not an object`);
  const missing = fields.filter((f) => value[f] === undefined);
  if (missing.length) throw new JobMessageError(`${what} lacks ${missing.join(', ')}`);
  return value;
}

function parseJson(data: Uint8Array | string, what: string): unknown {
  try {
    return JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
  } catch {
    throw new JobMessageError(`${what} is not JSON`);
  }
}

export function encodeMessage(message: QuantizationJobSpec | JobEvent): Uint8Array {
  return Buffer.from(JSON.stringify(message));
}

/** Checks the shape of a job spec off the wire: a malformed one fails loudly, not deep in the engine. */
export function decodeJobSpec(data: Uint8Array | string): QuantizationJobSpec {
  const spec = requireFields(parseJson(data, 'job'), ['jobId', 'model', 'parent', 'method', 'bits', 'calibration'], 'job');
  if (!(QUANTIZATION_METHODS as readonly unknown[]).includes(spec.method)) throw new JobMessageError(`job method ${String(spec.method)} is unknown`);
  if (!(String(spec.bits) in SUPPORTED_BITS)) throw new JobMessageError(`job bits ${String(spec.bits)} are unsupported`);
  return spec as unknown as QuantizationJobSpec;
}

export function decodeJobEvent(data: Uint8Array | string): JobEvent {
  const event = requireFields(parseJson(data, 'job event'), ['kind', 'jobId', 'attempt', 'worker'], 'job event');
  if (event.kind === 'progress') return requireFields(event, ['stage', 'progress'], 'progress event') as unknown as JobProgressEvent;
  if (event.kind === 'result') {
    const result = requireFields(event, ['outcome'], 'result event');
    if (result.outcome === 'succeeded') requireFields(result, ['artifactSha256', 'artifactSize'], 'result event');
    else if (result.outcome !== 'failed' && result.outcome !== 'cancelled') throw new JobMessageError(`result outcome ${String(result.outcome)} is unknown`);
    return result as unknown as JobResultEvent;
  }
  throw new JobMessageError(`job event kind ${String(event.kind)} is unknown`);
}
