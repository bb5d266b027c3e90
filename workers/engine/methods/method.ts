/** The contract between quantizeModel and a quantization method (rtn here; FIMA-Q's methods later). */
import * as tf from '@tensorflow/tfjs';
import { Block } from '../blocks';
import { ImageModel } from '../image-model';
import { QuantizedModel } from '../simulation';

export interface MethodProgress {
  stage: string;
  done: number;
  total: number;
  /** Optional detail: block name, loss, ... */
  detail?: string;
}

export interface MethodContext {
  model: ImageModel;
  quantized: QuantizedModel;
  blocks: readonly Block[];
  /** Calibration images as batches of [N, C, H, W] tensors, owned by quantizeModel. */
  calibration: readonly tf.Tensor[];
  onProgress: (progress: MethodProgress) => void;
}

/** Fills every site's quantizer (and whatever else the method learns) in `context.quantized`. */
export type QuantizationMethod = (context: MethodContext) => Promise<void>;
