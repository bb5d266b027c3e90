import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { forward, loadImageModelFile } from '../../workers/engine/image-model';
import { OnnxProgram } from '../../workers/engine/program';
import { QuantizedModel } from '../../workers/engine/simulation';
import { MinMaxObserver } from '../../workers/engine/calibration';
import { findSites } from '../../workers/engine/sites';
import { buildModel, values } from './onnx-builder';
import { syntheticImages, tinyClassifier } from './fixtures';

beforeAll(async () => {
  await initBackend();
});

/** x[2,4] -> MatMul W[4,3] -> Add b -> Gelu via Erf -> LayerNormalization -> Softmax -> y */
function smallProgram(): OnnxProgram {
  return OnnxProgram.fromBytes(buildModel({
    inputs: [{ name: 'x', shape: [2, 4] }],
    outputs: [{ name: 'y', shape: [2, 3] }],
    initializers: [
      { name: 'W', shape: [4, 3], values: values(12, 3) },
      { name: 'b', shape: [3], values: values(3, 4) },
      { name: 'half', shape: [], values: [0.5] },
      { name: 'one', shape: [], values: [1] },
      { name: 'rsqrt2', shape: [], values: [Math.SQRT1_2] },
      { name: 'gamma', shape: [3], values: [1, 0.5, 2] },
      { name: 'beta', shape: [3], values: [0, 0.1, -0.1] },
    ],
    nodes: [
      { op: 'MatMul', inputs: ['x', 'W'], outputs: ['xw'] },
      { op: 'Add', inputs: ['xw', 'b'], outputs: ['h'] },
      { op: 'Mul', inputs: ['h', 'rsqrt2'], outputs: ['hs'] },
      { op: 'Erf', inputs: ['hs'], outputs: ['e'] },
      { op: 'Add', inputs: ['e', 'one'], outputs: ['e1'] },
      { op: 'Mul', inputs: ['h', 'e1'], outputs: ['he'] },
      { op: 'Mul', inputs: ['he', 'half'], outputs: ['g'] },
      { op: 'LayerNormalization', inputs: ['g', 'gamma', 'beta'], outputs: ['n'], attributes: { axis: -1, epsilon: 1e-5 } },
      { op: 'Softmax', inputs: ['n'], outputs: ['y'], attributes: { axis: -1 } },
    ],
  }));
}

describe('gradients through the program', () => {
  it('match central finite differences on a small graph', () => {
    const program = smallProgram();
    const weights = tf.tensor1d([1, -2, 0.5]);
    const loss = (x: tf.Tensor): tf.Scalar => tf.sum(tf.mul(program.run({ x })['y'], weights));
    const x0 = values(8, 11);
    const analytic = tf.grad(loss)(tf.tensor(x0, [2, 4])).dataSync();
    const h = 1e-2;
    x0.forEach((_, i) => {
      const at = (delta: number): number => {
        const x = [...x0];
        x[i] += delta;
        return tf.tidy(() => loss(tf.tensor(x, [2, 4])).dataSync()[0]);
      };
      const numeric = (at(h) - at(-h)) / (2 * h);
      expect(Math.abs(numeric - analytic[i])).toBeLessThan(2e-3);
    });
  });

  it('flow through Gather with few (sliced) and many (one-hot scattered) indices', () => {
    for (const indices of [[2, 0], Array.from({ length: 20 }, (_, i) => (i * 7) % 5)]) {
      const program = OnnxProgram.fromBytes(buildModel({
        inputs: [{ name: 'x', shape: [3, 5, 2] }],
        outputs: [{ name: 'y', shape: [3, indices.length, 2] }],
        initializers: [{ name: 'i', shape: [indices.length], values: indices, type: 7 }],
        nodes: [{ op: 'Gather', inputs: ['x', 'i'], outputs: ['y'], attributes: { axis: 1 } }],
      }));
      const grad = tf.grad((x: tf.Tensor) => tf.sum(program.run({ x })['y']))(tf.zeros([3, 5, 2]));
      const counts = [0, 1, 2, 3, 4].map((k) => indices.filter((i) => i === k).length);
      expect(Array.from(grad.dataSync())).toEqual([0, 1, 2].flatMap(() => counts.flatMap((c) => [c, c])));
    }
  });

  it('reach weights, input and scales through the fake-quantized ViT (straight-through rounding)', () => {
    const model = loadImageModelFile(tinyClassifier(17));
    const sites = findSites(model.program, { weightBits: 4, activationBits: 4 });
    const quantized = new QuantizedModel(model.program, sites);
    const images = tf.tensor(syntheticImages(4, model.input.chw), [4, ...model.input.chw]);
    const observer = new MinMaxObserver(quantized);
    tf.tidy(() => {
      model.program.run({ input: images }, { hooks: observer.hooks() });
    });
    observer.applyTo(quantized);
    observer.dispose();
    // A learned weight replaces the fc1 weight operand, as AdaRound will.
    const fc1 = sites.find((s) => s.id.includes('fc1')) as (typeof sites)[number];
    const weightOperand = fc1.operands[1];
    const learnedWeight = tf.variable(model.program.constantValue(weightOperand.tensor) as tf.Tensor);
    quantized.setTransform(fc1, weightOperand, () => learnedWeight);
    const scales = [...quantized.quantizers.values()].map((q) => q.scale);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(forward(model, images, { hooks: quantized.hooks() }))) as tf.Scalar, [...scales, learnedWeight]);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    const nonZero = Object.values(grads).filter((g) => tf.any(tf.notEqual(g, 0)).dataSync()[0]).length;
    // Every scale but the replaced weight quantizer's, plus the learned weight.
    expect(nonZero).toBe(scales.length);
    const inputGrad = tf.grad((x: tf.Tensor) => tf.sum(forward(model, x, { hooks: quantized.hooks() })))(images);
    expect(tf.any(tf.notEqual(inputGrad, 0)).dataSync()[0]).toBe(1);
    quantized.dispose();
  });
});
