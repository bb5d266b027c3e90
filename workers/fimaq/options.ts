/**
 * FIMA-Q's knobs with the defaults of the paper's 4-bit and 3-bit configs (docs/fimaq.md), and the checks
 * that turn bad requests into clear errors before any long work starts.
 */
import { InputError } from '../data/errors';
import type { CalibrationCache } from './calibrate';

/** Reconstruction losses; `kl` is what the head block always uses. */
export type ReconstructionLoss = 'mse' | 'fisher_diag' | 'fisher_lr' | 'fisher_dplr' | 'fisher_brecq';

export type LogitsTask = 'classification' | 'retrieval';

/** Where a retrieval model's logits come from: τ·cos(embedding, reference rows). */
export type ReferenceSet =
  | { kind: 'prototypes' }
  | { kind: 'gallery' }
  | { kind: 'embeddings'; vectors: Float32Array; dim: number };

export interface FimaqOptions {
  /** Images for stage 2 (block reconstruction). */
  reconSize: number;
  /** Reconstruction iterations per block. */
  iters: number;
  /** Mini-batch of one reconstruction iteration. */
  batchSize: number;
  /** Rank k of the DPLR Fisher approximation (number of snapshots kept). */
  rank: number;
  seed: number;
  /** Grid points of every scale search. */
  eqN: number;
  /** Alternations of weight and activation search. */
  searchRounds: number;
  /** Softmax temperature of the KL whose gradient weighs the Fisher losses. */
  temperature: number;
  /** Probability of QDrop taking the quantized value (inputs) or quantizing (activations). */
  dropProbability: number;
  /** Expand per-head attention-input scales to per head × row while reconstructing. */
  expandAttentionScales: boolean;
  task: LogitsTask;
  reference: ReferenceSet;
  /** τ of the retrieval logits. */
  retrievalScale: number;
  /** onnxruntime threads of the reconstruction graphs; 0 lets onnxruntime use every core. */
  threads: number;
  /**
   * Stage-1 results shared between runs on the same model and bit widths (a benchmark comparing
   * reconstruction losses from one calibration); stage 1 does not depend on the seed.
   */
  calibrationCache?: CalibrationCache;
}

export const DEFAULT_FIMAQ_OPTIONS: FimaqOptions = {
  reconSize: 1024,
  iters: 1000,
  batchSize: 32,
  rank: 5,
  seed: 0,
  eqN: 128,
  searchRounds: 3,
  temperature: 20,
  dropProbability: 0.5,
  expandAttentionScales: true,
  task: 'classification',
  reference: { kind: 'prototypes' },
  retrievalScale: 20,
  threads: 0,
};

export function resolveFimaqOptions(given: Partial<FimaqOptions> | undefined): FimaqOptions {
  const options = { ...DEFAULT_FIMAQ_OPTIONS, ...withoutUndefined(given ?? {}) };
  const positive: (keyof FimaqOptions)[] = ['reconSize', 'iters', 'batchSize', 'rank', 'eqN', 'searchRounds'];
  for (const key of positive) {
    const v = options[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InputError(`${key} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isInteger(options.threads) || options.threads < 0) throw new InputError(`threads must be a non-negative integer, got ${String(options.threads)}`);
  if (!Number.isInteger(options.seed)) throw new InputError(`seed must be an integer, got ${options.seed}`);
  if (!(options.temperature > 0)) throw new InputError(`temperature must be positive, got ${options.temperature}`);
  if (!(options.dropProbability >= 0 && options.dropProbability <= 1)) throw new InputError(`dropProbability must be within 0..1, got ${options.dropProbability}`);
  if (options.batchSize > options.reconSize) {
    throw new InputError(`the reconstruction batch (${options.batchSize}) is larger than the reconstruction set (${options.reconSize}); lower --batch-size or raise --recon-size`);
  }
  return options;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
