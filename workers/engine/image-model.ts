/** Loads an ONNX vision model: one NCHW image input with a fixed size and a (dynamic or fixed) batch dimension. */
import { InputError } from '../data/errors';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { onnx } from './onnx/proto';
import { OnnxProgram, RunOptions } from './program';

export interface ImageInput {
  name: string;
  /** [channels, height, width]. */
  chw: [number, number, number];
  /** Set when the export fixed the batch size (no dynamic axis): every batch must have it. */
  fixedBatch?: number;
}

export interface ImageModel {
  program: OnnxProgram;
  input: ImageInput;
  /** The model's first output: logits of a classifier, or an embedding. */
  outputName: string;
}

function imageInput(program: OnnxProgram, source: string): ImageInput {
  const float = program.graph.inputs.filter((i) => i.elemType === onnx.TensorProto.DataType.FLOAT);
  const images = float.filter((i) => i.shape?.length === 4);
  if (images.length !== 1 || program.graph.inputs.length !== 1) {
    const found = program.graph.inputs.map((i) => `${i.name} [${i.shape?.join(', ') ?? '?'}]`).join(', ') || 'none';
    throw new InputError(`${source} has no single image input: expected one float32 input of shape [N, C, H, W], found ${found}`);
  }
  const [input] = images;
  const dims = input.shape as (number | string)[];
  const symbolic = dims.slice(1).filter((d) => typeof d !== 'number' || d <= 0);
  if (symbolic.length > 0) {
    throw new InputError(`${source}: input '${input.name}' has dynamic dimensions [${dims.join(', ')}] the engine cannot resolve; `
      + 'only the batch dimension may be dynamic. Re-export with a fixed image size.');
  }
  const [batch] = dims;
  const fixedBatch = typeof batch === 'number' && batch > 0 ? batch : undefined;
  return { name: input.name, chw: dims.slice(1) as [number, number, number], fixedBatch };
}

export function loadImageModel(bytes: Uint8Array, source = 'model'): ImageModel {
  const program = OnnxProgram.fromBytes(bytes, source);
  const input = imageInput(program, source);
  try {
    program.resolveBatchShapes(input.name, input.chw, input.fixedBatch);
  } catch (err) {
    throw new InputError(`${source}: running the graph on a [N, ${input.chw.join(', ')}] input failed, its shapes cannot be resolved: ${(err as Error).message}`);
  }
  return { program, input, outputName: program.outputNames[0] };
}

export function loadImageModelFile(path: string): ImageModel {
  return loadImageModel(fs.readFileSync(path), path);
}

/** Forward pass of a batch of images (FP32, or quantized with a QuantizedModel's hooks); the result is owned by the caller. */
export function forward(model: ImageModel, images: tf.Tensor, options: RunOptions = {}): tf.Tensor {
  return tf.tidy(() => model.program.run({ [model.input.name]: images }, options)[model.outputName]);
}
