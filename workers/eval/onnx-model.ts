import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { Preprocessing } from '../common/preprocessing';
import { InputError } from '../data/errors';
import type { ImageBatch } from '../data/types';

/** Model outputs of one batch: `dims[0]` rows of `dims[1]` floats. */
export interface ModelOutput {
  data: Float32Array;
  dims: number[];
}

/** A model output: its name and declared shape (symbolic dimensions as strings). */
export interface OutputSignature {
  name: string;
  shape: readonly (number | string)[] | undefined;
}

/**
 * An ONNX image model run by onnxruntime-node: checks that its image input fits a preprocessing
 * and returns one float output per batch.
 */
export class OnnxImageModel {
  private constructor(
    private readonly session: InferenceSession,
    readonly path: string,
  ) {}

  static async load(path: string, options: { threads?: number } = {}): Promise<OnnxImageModel> {
    let session: InferenceSession;
    try {
      session = await InferenceSession.create(path, { intraOpNumThreads: options.threads ?? 0, graphOptimizationLevel: 'all' });
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0];
      throw new InputError(`cannot load ONNX model ${path}: ${msg}`);
    }
    return new OnnxImageModel(session, path);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** The declared shape of an output (default: the first); undefined dims when it is not a tensor. */
  outputSignature(name = this.outputNames[0]): OutputSignature {
    const meta = this.session.outputMetadata.find((m) => m.name === name);
    return { name, shape: meta?.isTensor ? meta.shape : undefined };
  }

  /**
   * What the model's input metadata tells about the preprocessing: the input name when there is a
   * single input, and size, channels and layout when the rank-4 shape has fixed dimensions with
   * 1 or 3 channels in an unambiguous place.
   */
  preprocessingHints(): Partial<Preprocessing> {
    if (this.session.inputNames.length !== 1) return {};
    const meta = this.session.inputMetadata[0];
    const hints: Partial<Preprocessing> = { inputName: meta.name };
    if (!meta.isTensor || meta.shape.length !== 4) return hints;
    const [, a, b, c] = meta.shape;
    const isChannels = (d: number | string): boolean => d === 1 || d === 3;
    if (isChannels(a) && typeof b === 'number' && typeof c === 'number' && !isChannels(c)) {
      return { ...hints, layout: 'NCHW', channels: a as number, height: b, width: c };
    }
    if (isChannels(c) && typeof a === 'number' && typeof b === 'number' && !isChannels(a)) {
      return { ...hints, layout: 'NHWC', channels: c as number, height: a, width: b };
    }
    return hints;
  }

  /** Throws a one-line InputError when the image input cannot take tensors made with `pre`. */
  checkInput(pre: Preprocessing): void {
    const meta = this.session.inputMetadata.find((m) => m.name === pre.inputName);
    if (!meta) {
      throw new InputError(
        `${this.path}: model has no input named "${pre.inputName}" (inputs: ${this.session.inputNames.join(', ')}); pass --input-name`,
      );
    }
    if (this.session.inputNames.length !== 1) {
      throw new InputError(`${this.path}: model has ${this.session.inputNames.length} inputs; only single-input image models can be evaluated`);
    }
    if (!meta.isTensor || meta.type !== 'float32') {
      throw new InputError(`${this.path}: input "${meta.name}" must be a float32 tensor`);
    }
    const expected = pre.layout === 'NCHW' ? [pre.channels, pre.height, pre.width] : [pre.height, pre.width, pre.channels];
    const actual = meta.shape.slice(1);
    const fits = meta.shape.length === 4 && actual.every((d, i) => typeof d !== 'number' || d < 0 || d === expected[i]);
    if (!fits) {
      throw new InputError(
        `${this.path}: input "${meta.name}" has shape [${meta.shape.join(', ')}] but the preprocessing makes ` +
          `[N, ${expected.join(', ')}] (${pre.layout}); fix --size, --channels or --layout`,
      );
    }
  }

  /** Runs one batch and returns the named output (default: the first) as [N, D] floats. */
  async run(batch: Pick<ImageBatch, 'data' | 'dims'>, inputName: string, outputName = this.outputNames[0]): Promise<ModelOutput> {
    const feeds = { [inputName]: new Tensor('float32', batch.data, batch.dims) };
    const results = await this.session.run(feeds, [outputName]);
    const out = results[outputName];
    if (out.type !== 'float32') throw new InputError(`${this.path}: output "${outputName}" is ${out.type}, expected float32`);
    const rows = out.dims[0];
    const cols = out.dims.slice(1).reduce((a, b) => a * b, 1);
    return { data: out.data as Float32Array, dims: [rows, cols] };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
