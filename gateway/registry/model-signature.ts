import * as ort from 'onnxruntime-node';
import type { Preprocessing } from '../../workers/common/preprocessing';
import { invalidModel } from '../errors';
import { datatypeOfOrtType } from '../tensors/tensor';
import type { ModelSignature, ModelTask, TensorSignature } from './registry-types';

function describe(meta: ort.InferenceSession.ValueMetadata): TensorSignature {
  if (!meta.isTensor) throw invalidModel(`value "${meta.name}" is not a tensor; only tensor inputs and outputs are served`);
  return {
    name: meta.name,
    datatype: datatypeOfOrtType(meta.type),
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
  };
}

/** Loads the model in onnxruntime to prove it runs here, and reads its signature. */
export async function readSignature(onnxBytes: Buffer): Promise<ModelSignature> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnxBytes, { graphOptimizationLevel: 'disabled' });
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    throw invalidModel(`onnxruntime could not load the model: ${reason}`);
  }
  try {
    return { inputs: session.inputMetadata.map(describe), outputs: session.outputMetadata.map(describe) };
  } finally {
    await session.release();
  }
}

function fits(actual: number, expected: number): boolean {
  return actual === -1 || actual === expected;
}

/**
 * Checks that the model is an image model for the task: one float image input whose static
 * dimensions agree with the preprocessing, and one output of shape [batch, classes] for a
 * classifier or [batch, embedding] for a retrieval encoder.
 */
export function checkSignatureFitsTask(
  signature: ModelSignature,
  task: ModelTask,
  preprocessing: Preprocessing,
  labelCount: number,
): void {
  if (signature.inputs.length !== 1) {
    throw invalidModel(`an image model must have exactly one input; this one has ${signature.inputs.length}`);
  }
  const [input] = signature.inputs;
  if (input.name !== preprocessing.inputName) {
    throw invalidModel(`the model's input is "${input.name}", but preprocessing names "${preprocessing.inputName}"`);
  }
  if (input.datatype !== 'FP32' || input.shape.length !== 4) {
    throw invalidModel(`input "${input.name}" must be a rank-4 FP32 image tensor; it is ${input.datatype} [${input.shape.join(', ')}]`);
  }
  const { channels, height, width, layout } = preprocessing;
  const expected = layout === 'NCHW' ? [channels, height, width] : [height, width, channels];
  if (!expected.every((d, i) => fits(input.shape[i + 1], d))) {
    throw invalidModel(
      `input "${input.name}" has shape [${input.shape.join(', ')}], which does not fit ${layout} images of ` +
        `${channels}x${height}x${width} from the preprocessing`,
    );
  }
  if (signature.outputs.length !== 1) {
    throw invalidModel(`an image model must have exactly one output; this one has ${signature.outputs.length}`);
  }
  const [output] = signature.outputs;
  if (output.shape.length !== 2) {
    const wanted = task === 'CLASSIFICATION' ? '[batch, classes]' : '[batch, embedding]';
    throw invalidModel(`a ${task} model's output must be ${wanted}; "${output.name}" is [${output.shape.join(', ')}]`);
  }
  const width2 = output.shape[1];
  if (task === 'CLASSIFICATION' && labelCount > 0 && !fits(width2, labelCount)) {
    throw invalidModel(`output "${output.name}" has ${width2} classes but ${labelCount} labels were given`);
  }
  if (task === 'CLASSIFICATION' && labelCount === 0 && width2 === -1) {
    throw invalidModel(`output "${output.name}" has a dynamic class dimension; give the labels explicitly`);
  }
  if (task === 'RETRIEVAL' && width2 === -1) {
    throw invalidModel(`output "${output.name}" must have a static embedding size`);
  }
}
