import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { Block, partitionBlocks } from '../../workers/engine/blocks';
import { MinMaxObserver } from '../../workers/engine/calibration';
import { forward, ImageModel, loadImageModel } from '../../workers/engine/image-model';
import { QuantizedModel } from '../../workers/engine/simulation';
import { findSites } from '../../workers/engine/sites';
import { BlockLearner } from '../../workers/fimaq/block-learner';
import { DplrFisher, klDivergence, LOSSES } from '../../workers/fimaq/losses';
import { OnnxFisherSnapshot, OnnxTrainingStep } from '../../workers/fimaq/onnx-step';
import { klGradientMagnitude } from '../../workers/fimaq/kl-gradient';
import { classificationLogits, retrievalLogits } from '../../workers/fimaq/logits';
import { buildSnapshotGraph, buildTrainingGraph } from '../../workers/fimaq/training-graph';
import { syntheticVit } from '../bench/synthetic-vit';
import { sampleImages, trainedTinyClassifier } from './fixtures';

const ROWS = 16;

beforeAll(async () => {
  await initBackend();
});

interface Setup {
  model: ImageModel;
  quantized: QuantizedModel;
  block: Block;
  /** Data nodes after the block. */
  rest: number[];
  input: tf.Tensor;
  target: tf.Tensor;
  /** The FP model's logits on the images. */
  logits: tf.Tensor;
}

/** The tiny ViT min/max-calibrated at `bits` on 16 images, and its blocks. */
async function calibratedTinyViT(bits: number): Promise<{ model: ImageModel; quantized: QuantizedModel; blocks: Block[]; images: tf.Tensor }> {
  const model = loadImageModel(fs.readFileSync(trainedTinyClassifier), 'tiny');
  const sites = findSites(model.program, { weightBits: bits, activationBits: bits });
  const quantized = new QuantizedModel(model.program, sites);
  const images = await sampleImages('train', ROWS);
  const observer = new MinMaxObserver(quantized);
  tf.tidy(() => { model.program.run({ [model.input.name]: images }, { hooks: observer.hooks() }); });
  observer.applyTo(quantized);
  observer.dispose();
  return { model, quantized, blocks: partitionBlocks(model.program, sites), images };
}

/** The 3-bit tiny ViT, its first transformer block, that block's input and FP output on 16 images. */
async function setup(): Promise<Setup> {
  const { model, quantized, blocks, images } = await calibratedTinyViT(3);
  const index = blocks.findIndex((b) => b.kind === 'transformer');
  const block = blocks[index];
  const before = blocks.slice(0, index).flatMap((b) => b.nodes);
  const [input] = model.program.runNodes(before, new Map([[model.input.name, images]]), [block.input]);
  const [target] = model.program.runNodes(block.nodes, new Map([[block.input, input]]), [block.output]);
  const rest = blocks.slice(index + 1).flatMap((b) => b.nodes);
  return { model, quantized, block, rest, input, target, logits: forward(model, images) };
}

const flat = (t: tf.Tensor): tf.Tensor => tf.reshape(t, [t.shape[0], -1]);

/** ‖a − b‖ / ‖a‖ */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    norm += a[i] ** 2;
  }
  return Math.sqrt(diff / Math.max(norm, 1e-30));
}

describe('the reconstruction step as an onnxruntime training graph', () => {
  it('computes the loss and every gradient the tfjs simulation computes, for every loss, with the rounding regularizer', async () => {
    const { quantized, block, input, target } = await setup();
    const learner = new BlockLearner(quantized, block, { dropProbability: 1, expandAttentionScales: true });
    const fisher = new DplrFisher(3);
    const width = flat(target).shape[1] as number;
    for (let k = 0; k < 2; k++) fisher.add(tf.randomUniform([width], 0, 1, 'float32', 7 + k), tf.randomUniform([width], 0, 1, 'float32', 17 + k));
    const beta = 10;
    const rows = { quantized: Float32Array.from(input.dataSync()), fp: Float32Array.from(input.dataSync()), target: Float32Array.from(target.dataSync()) };
    const indices = Int32Array.from({ length: ROWS }, (_, i) => i);
    const sampleGradients = tf.randomUniform([ROWS, width], 0, 1, 'float32', 27);
    for (const lossName of ['mse', 'fisher_diag', 'fisher_lr', 'fisher_dplr', 'fisher_brecq'] as const) {
      const loss = LOSSES[lossName];
      const scales = loss.weights.map((w, i) => w / (i + 2));
      const { value, grads } = tf.variableGrads(() => {
        const output = flat(model_(quantized, block, input));
        const terms = loss.terms({ output, target: flat(target), fisher, sampleGradients });
        const reconstruction = tf.addN(terms.map((t, i) => tf.mul(t, scales[i])));
        return tf.add(reconstruction, tf.mul(learner.regularizer(beta), 0.01)) as tf.Scalar;
      }, learner.parameters.map((p) => p.variable));
      const graph = buildTrainingGraph(quantized, block, learner, input.shape.slice(1), {
        batchSize: ROWS, dropProbability: 1, seed: 0, objective: { kind: 'reconstruction', loss, fisherRank: loss.snapshotRank ? 3 : undefined, sampleGradients: lossName === 'fisher_brecq' },
      });
      const step = await OnnxTrainingStep.create(graph, { ...rows, sampleGradients: Float32Array.from(sampleGradients.dataSync()) }, learner);
      step.setFisher(fisher.hostFactors());
      const result = await step.run({ indices, beta, roundingWeight: 0.01, termScales: scales });
      await step.release();
      expect(relativeError([value.dataSync()[0]], [result.loss])).toBeLessThan(1e-5);
      const errors = learner.parameters.map((p, i) => relativeError(grads[p.variable.name].dataSync(), result.grads[i]));
      errors.forEach((e) => expect(e).toBeLessThan(1e-3));
    }
    fisher.dispose();
    learner.finish(quantized.program);
  }, 120_000);

  it('computes the head block\'s KL loss and gradients as tfjs does, through the classifier\'s Gemm', async () => {
    const { model, quantized, blocks, images } = await calibratedTinyViT(4);
    const head = blocks[blocks.length - 1];
    expect(head.kind).toBe('head');
    const [input] = model.program.runNodes(blocks.slice(0, -1).flatMap((b) => b.nodes), new Map([[model.input.name, images]]), [head.input]);
    const targets = tf.softmax(tf.mul(forward(model, images), 0.5));
    const learner = new BlockLearner(quantized, head, { dropProbability: 1, expandAttentionScales: true });
    const { value, grads } = tf.variableGrads(() => klDivergence(targets, model_(quantized, head, input)), learner.parameters.map((p) => p.variable));
    const graph = buildTrainingGraph(quantized, head, learner, input.shape.slice(1), {
      batchSize: ROWS, dropProbability: 1, seed: 0, objective: { kind: 'kl', logits: classificationLogits },
    });
    const step = await OnnxTrainingStep.create(graph, { quantized: Float32Array.from(input.dataSync()), fp: Float32Array.from(input.dataSync()), target: Float32Array.from(targets.dataSync()) }, learner);
    const result = await step.run({ indices: Int32Array.from({ length: ROWS }, (_, i) => i), beta: undefined, roundingWeight: 0.01, termScales: [1] });
    await step.release();
    expect(relativeError([value.dataSync()[0]], [result.loss])).toBeLessThan(1e-4);
    learner.parameters.forEach((p, i) => expect(relativeError(grads[p.variable.name].dataSync(), result.grads[i])).toBeLessThan(1e-3));
    learner.finish(quantized.program);
  }, 120_000);

  it('draws QDrop masks from seeded onnxruntime generators: new masks every step, the same sequence for the same seed', async () => {
    const { quantized, block, input, target } = await setup();
    const learner = new BlockLearner(quantized, block, { dropProbability: 0.5, expandAttentionScales: true });
    const rows = { quantized: Float32Array.from(tf.add(input, 0.05).dataSync()), fp: Float32Array.from(input.dataSync()), target: Float32Array.from(target.dataSync()) };
    const stepInputs = { indices: Int32Array.from({ length: ROWS }, (_, i) => i), beta: undefined, roundingWeight: 0.01, termScales: [1] };
    const losses = async (seed: number): Promise<number[]> => {
      const graph = buildTrainingGraph(quantized, block, learner, input.shape.slice(1), {
        batchSize: ROWS, dropProbability: 0.5, seed, objective: { kind: 'reconstruction', loss: LOSSES.mse, sampleGradients: false },
      });
      const step = await OnnxTrainingStep.create(graph, rows, learner);
      const values = [(await step.run(stepInputs)).loss, (await step.run(stepInputs)).loss];
      await step.release();
      return values;
    };
    const [first, again, other] = [await losses(1), await losses(1), await losses(2)];
    expect(again).toEqual(first);
    expect(first[1]).not.toEqual(first[0]);
    expect(other).not.toEqual(first);
    learner.finish(quantized.program);
  }, 120_000);

  it('builds graphs for models whose own names look like the builder\'s (mul_7, scalar_12)', async () => {
    const model = loadImageModel(syntheticVit({ imageSize: 16, patch: 4, dim: 32, heads: 1, mlp: 64, depth: 1, classes: 10 }), 'synthetic');
    expect(model.program.nodes.some((n) => n.outputs.some((o) => /^mul_\d+$/.test(o)))).toBe(true);
    const sites = findSites(model.program, { weightBits: 4, activationBits: 4 });
    const quantized = new QuantizedModel(model.program, sites);
    const images = tf.randomNormal([ROWS, 1, 16, 16], 0, 1, 'float32', 3);
    const observer = new MinMaxObserver(quantized);
    tf.tidy(() => { model.program.run({ [model.input.name]: images }, { hooks: observer.hooks() }); });
    observer.applyTo(quantized);
    observer.dispose();
    const block = partitionBlocks(model.program, sites).find((b) => b.kind === 'transformer') as Block;
    const learner = new BlockLearner(quantized, block, { dropProbability: 0.5, expandAttentionScales: true });
    const graph = buildTrainingGraph(quantized, block, learner, [17, 32], {
      batchSize: ROWS, dropProbability: 0.5, seed: 0, objective: { kind: 'reconstruction', loss: LOSSES.mse, sampleGradients: false },
    });
    const rows = new Float32Array(ROWS * 17 * 32).fill(0.5);
    const step = await OnnxTrainingStep.create(graph, { quantized: rows, fp: rows, target: rows }, learner);
    const result = await step.run({ indices: Int32Array.from({ length: ROWS }, (_, i) => i), beta: 4, roundingWeight: 0.01, termScales: [1] });
    await step.release();
    expect(Number.isFinite(result.loss)).toBe(true);
    learner.finish(quantized.program);
  }, 120_000);

  it('takes Fisher snapshots equal to the tfjs ones, through the rest of the model and the logits map, with a padded last batch', async () => {
    const { model, quantized, block, rest, input, target, logits } = await setup();
    const learner = new BlockLearner(quantized, block, { dropProbability: 1, expandAttentionScales: true });
    const temperature = 20;
    const retrieval = retrievalLogits(tf.slice(logits, 0, 5), 10);
    for (const logitsOf of [classificationLogits, retrieval.logits]) {
      const softTargets = tf.softmax(tf.div(logitsOf(logits), temperature));
      const output = model_(quantized, block, input);
      const restOfModel = (y: tf.Tensor): tf.Tensor => logitsOf(quantized.program.runNodes(rest, new Map([[block.output, y]]), [model.outputName])[0]);
      const expectedGradient = tf.mean(klGradientMagnitude(restOfModel, output, { probabilities: softTargets, temperature }), 0).dataSync();
      const expectedDelta = tf.mean(tf.abs(tf.sub(flat(output), flat(target))), 0).dataSync();
      // A batch of 12 over 16 rows: the second batch is padded with 8 rows of weight 0.
      const graph = buildSnapshotGraph(quantized, block, learner, input.shape.slice(1), { batchSize: 12, restNodes: rest, modelOutput: model.outputName, logits: logitsOf, temperature });
      const snapshot = await OnnxFisherSnapshot.create(graph, {
        quantized: Float32Array.from(input.dataSync()), target: Float32Array.from(target.dataSync()), softTargets: Float32Array.from(softTargets.dataSync()), count: ROWS,
      }, learner);
      const { meanGradient, meanDelta } = await snapshot.run();
      await snapshot.release();
      expect(Math.max(...expectedGradient)).toBeGreaterThan(0);
      expect(relativeError(expectedGradient, meanGradient)).toBeLessThan(1e-3);
      expect(relativeError(expectedDelta, meanDelta)).toBeLessThan(1e-4);
    }
    retrieval.reference.dispose();
    learner.finish(quantized.program);
  }, 120_000);
});

function model_(quantized: QuantizedModel, block: Block, input: tf.Tensor): tf.Tensor {
  return quantized.program.runNodes(block.nodes, new Map([[block.input, input]]), [block.output], { hooks: quantized.hooks() })[0];
}
