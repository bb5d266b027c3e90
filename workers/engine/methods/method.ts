/** The contract between quantizeModel and a quantization method (rtn here; FIMA-Q's methods later). */
import * as tf from '@tensorflow/tfjs';
import { Block } from '../blocks';
import { ImageModel } from '../image-model';
import { QuantizedModel } from '../simulation';
import type { StageWork } from '../work';

export interface MethodProgress {
  stage: string;
  done: number;
  total: number;
  /** Optional detail: block name, loss, ... */
  detail?: string;
  /** A line worth keeping in a job's log even when progress events are rate-limited (a block's outcome). */
  milestone?: boolean;
  /** All of the method's stages, those done and those to come: progress and ETAs are built from them. */
  work: readonly StageWork[];
  /** The model block being worked on (0-based among `blockCount`), in every stage that works block by block. */
  blockIndex?: number;
  blockCount?: number;
  /** Structured detail of iterative stages (reconstruction). */
  block?: string;
  iteration?: number;
  iterations?: number;
  /** The objective minimized: taskLoss plus the rounding regularizer's weighted share. */
  loss?: number;
  taskLoss?: number;
  regularizer?: number;
}

/** Method-specific settings passed through quantizeModel unchanged (e.g. FIMA-Q's iters, rank, seed); each method validates its own. */
export type MethodOptions = Readonly<Record<string, unknown>>;

/** What a method reports back (per-block losses, stage times, ...), stored in the quantize report; JSON-serializable. */
export type MethodReport = Readonly<Record<string, unknown>>;

export interface LoadedImages {
  batches: tf.Tensor[];
  labels?: Int32Array;
}

export interface MethodContext {
  model: ImageModel;
  quantized: QuantizedModel;
  blocks: readonly Block[];
  /** Calibration images as batches of [N, C, H, W] tensors, owned by quantizeModel. */
  calibration: readonly tf.Tensor[];
  /** Size of the calibration source, which may hold more images than `calibration`. */
  sourceSize: number;
  /** Whether the calibration source carries class labels. */
  sourceHasLabels: boolean;
  /** Loads the first `count` images of the calibration source as batches (owned by the caller), with their labels when it has them. */
  loadImages: (count: number, batchSize: number) => Promise<LoadedImages>;
  options: MethodOptions;
  onProgress: (progress: MethodProgress) => void;
}

/** Fills every site's quantizer (and whatever else the method learns) in `context.quantized`. */
export type QuantizationMethod = (context: MethodContext) => Promise<MethodReport | void>;
