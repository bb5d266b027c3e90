/**
 * One reconstruction step of a block as an ONNX graph that onnxruntime runs: the quantized block
 * (AdaRound weights, learned activation scales, QDrop), the reconstruction loss, the rounding
 * regularizer and the gradients of their sum with respect to the learned parameters. A step of
 * the tfjs simulation costs ~1200 small kernel launches on one thread; onnxruntime runs the same
 * step as a few hundred multithreaded kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { NoGradientRule } from '../engine/autodiff/gradient-rules';
import { onnxNode } from '../engine/autodiff/differentiate';
import { Tape } from '../engine/autodiff/tape';
import { Block } from '../engine/blocks';
import { ModelBuilder } from '../engine/onnx/model-builder';
import { onnx } from '../engine/onnx/proto';
import { HostTensor } from '../engine/onnx/tensor';
import { QuantizedModel } from '../engine/simulation';
import { AdaRoundWeight } from './adaround';
import { BlockLearner } from './block-learner';
import { LogitsFunction } from './logits';
import { klDivergenceGraph, LossDefinition } from './losses';

const DT = onnx.TensorProto.DataType;

export interface TrainingGraphOptions {
  batchSize: number;
  dropProbability: number;
  /** Seeds onnxruntime's QDrop generators (one per random draw in the graph). */
  seed: number;
  objective: TrainingObjective;
}

/**
 * What the step minimizes: a reconstruction loss against the FP block output, or for the head
 * block KL(softmax(z_fp) ‖ softmax(logits(Ŷ))).
 */
export type TrainingObjective =
  | { kind: 'reconstruction'; loss: LossDefinition; /** Rows of the Fisher factors when the loss uses them. */ fisherRank?: number; sampleGradients: boolean }
  | { kind: 'kl'; logits: LogitsFunction };

/** Names of the graph's inputs and outputs. Parameters come in `learner.parameters` order. */
export interface TrainingGraph {
  bytes: Uint8Array;
  /** [B, ...] rows of the block's input: quantized path, and full precision when QDrop mixes them. */
  quantizedInput: string;
  fpInput?: string;
  /** The FP block output (reconstruction), or softmax(z_fp) (KL), with its shape [B, ...]. */
  target: string;
  targetShape: number[];
  termScales: string;
  roundingWeight: string;
  beta: string;
  fisher?: { g: string; bInverse: string; gMean: string };
  sampleGradients?: string;
  parameters: { input: string; gradient: string; shape: number[] }[];
  loss: string;
  terms: string;
  /** Shapes ([B, ...]) of the block input and output. */
  inputShape: number[];
  outputShape: number[];
}

/**
 * A builder for a training graph of the model: same opset (the gradient rules write opset-13
 * forms), and every name of the source graph reserved, since its nodes are copied in later.
 */
function trainingGraphBuilder(model: QuantizedModel): ModelBuilder {
  const { graph } = model.program;
  if (graph.opset < 13) throw new NoGradientRule(`the model's opset ${graph.opset} is older than 13, which training graphs need`);
  const b = new ModelBuilder(graph.opset);
  b.reserve(graph.nodes.flatMap((n) => [n.name, ...n.inputs, ...n.outputs]));
  b.reserve(graph.initializers.keys());
  return b;
}

const hostTensor = (t: tf.Tensor): HostTensor => ({
  dtype: t.dtype === 'int32' ? 'int32' : t.dtype === 'bool' ? 'bool' : 'float32',
  shape: [...t.shape],
  data: t.dtype === 'int32' ? Int32Array.from(t.dataSync()) : t.dtype === 'bool' ? Uint8Array.from(t.dataSync()) : Float32Array.from(t.dataSync()),
});

const onnxTypeOf = (t: HostTensor): number => (t.dtype === 'float32' ? DT.FLOAT : t.dtype === 'bool' ? DT.BOOL : DT.INT64);

/** Static shapes and constant inputs of a run of program nodes at the graph's batch size. */
interface Section {
  shapes: Map<string, number[]>;
  constants: Map<string, HostTensor>;
}

function traceSection(model: QuantizedModel, nodes: readonly number[], input: string, inputShape: number[]): Section {
  const program = model.program;
  const section: Section = { shapes: new Map(), constants: new Map() };
  tf.tidy(() => {
    const trace = program.traceNodes(nodes, new Map([[input, tf.zeros(inputShape)]]));
    const produced = new Set(nodes.flatMap((i) => program.nodes[i].outputs));
    for (const i of nodes) {
      for (const name of program.nodes[i].inputs) {
        if (name && name !== input && !produced.has(name) && !section.constants.has(name)) section.constants.set(name, hostTensor(trace.get(name) as tf.Tensor));
      }
    }
    for (const [name, t] of trace) section.shapes.set(name, [...t.shape]);
  });
  return section;
}

/**
 * Records program nodes on the tape. `operandOf` may replace a node's input (a quantized operand);
 * constants are written once per graph (`written`).
 */
function writeSection(
  tape: Tape, model: QuantizedModel, nodes: readonly number[], section: Section, written: Set<string>,
  operandOf: (index: number, inputIndex: number, name: string) => string | undefined,
): void {
  for (const index of nodes) {
    const node = model.program.nodes[index];
    const inputs = node.inputs.map((name, k) => operandOf(index, k, name) ?? name);
    inputs.forEach((name) => {
      const constant = section.constants.get(name);
      if (!constant || written.has(name)) return;
      written.add(name);
      tape.b.constant(name, onnxTypeOf(constant), constant.shape, constant.data);
      tape.knowConstant(name, constant);
    });
    tape.push(onnxNode({ ...node, inputs }, node.outputs.map((o) => section.shapes.get(o)), tape.constantOf));
  }
}

interface QuantizedBlock {
  parameters: { input: string; shape: number[] }[];
  /** h(α) of every AdaRound weight, for the regularizer. */
  roundings: { rounding: string; shape: number[] }[];
}

/**
 * Records the block with its learned quantization: parameters become graph inputs, in
 * `learner.parameters` order; `blockInput` replaces the block's input; `drop` draws a QDrop seed.
 */
function writeQuantizedBlock(
  tape: Tape, model: QuantizedModel, block: Block, learner: BlockLearner, section: Section, written: Set<string>,
  blockInput: string, drop?: { keepQuantized: number; seed: () => number },
): QuantizedBlock {
  const { b } = tape;
  const parameters = learner.parameters.map((p) => ({ input: b.input(`parameter/${p.key}`, p.variable.shape), shape: [...p.variable.shape] }));
  const inputOf = new Map(learner.parameters.map((p, i) => [p.key, parameters[i].input]));
  const replaced = new Map<string, string>(); // `${nodeIndex}#${inputIndex}` → quantized operand
  const roundings: QuantizedBlock['roundings'] = [];
  const renamed = (name: string): string => (name === block.input ? blockInput : name);
  for (const site of block.sites) {
    for (const operand of site.operands) {
      const key = `${site.id}#${operand.inputIndex}`;
      const weight = learner.weights.get(key);
      if (!weight) continue;
      const form = weight.rounding.graphForm(tape, inputOf.get(key) as string);
      roundings.push({ rounding: form.rounding, shape: [...weight.rounding.alpha.shape] });
      replaced.set(`${site.nodeIndex}#${operand.inputIndex}`, form.weight);
    }
  }
  writeSection(tape, model, block.nodes, section, written, (index, k, name) => {
    const key = `${index}#${k}`;
    if (replaced.has(key)) return replaced.get(key);
    const site = block.sites.find((s) => s.nodeIndex === index);
    const activation = site && learner.activations.get(`${site.id}#${k}`);
    if (!activation) return renamed(name);
    const quantized = activation.learned.graphForm(tape, renamed(name), section.shapes.get(name) as number[], inputOf.get(`${site.id}#${k}`) as string,
      drop && drop.keepQuantized < 1 ? { seed: drop.seed(), keepQuantized: drop.keepQuantized } : undefined);
    replaced.set(key, quantized);
    return quantized;
  });
  return { parameters, roundings };
}

/** A seed sequence for onnxruntime's random ops (exact in the float `seed` attribute). */
function seedSequence(seed: number): () => number {
  let state = seed % 2147483647;
  return () => (state = (state * 48271 + 11) % 2147483647) % 16777216;
}

export function buildTrainingGraph(model: QuantizedModel, block: Block, learner: BlockLearner, inputShape: number[], options: TrainingGraphOptions): TrainingGraph {
  const rows = options.batchSize;
  const fullInputShape = [rows, ...inputShape];
  const section = traceSection(model, block.nodes, block.input, fullInputShape);
  const b = trainingGraphBuilder(model);
  const tape = new Tape(b);
  const outputShape = section.shapes.get(block.output) as number[];
  const outputWidth = sampleWidth(outputShape);
  const seed = seedSequence(options.seed);

  const quantizedInput = b.input('block_input_quantized', fullInputShape);
  let fpInput: string | undefined;
  let blockInput = quantizedInput;
  if (options.dropProbability < 1) {
    fpInput = b.input('block_input_fp', fullInputShape);
    const draw = tape.opaque('RandomUniformLike', [fpInput], fullInputShape, { seed: seed() }, ['seed']);
    blockInput = tape.opaque('Where', [tape.opaque('Less', [draw, b.scalar(options.dropProbability)]), quantizedInput, fpInput], fullInputShape);
  }
  const { parameters, roundings } = writeQuantizedBlock(tape, model, block, learner, section, new Set(), blockInput, { keepQuantized: options.dropProbability, seed });

  const flat = [rows, outputWidth];
  const { objective } = options;
  let target: string;
  let termList: string[];
  let fisher: TrainingGraph['fisher'];
  let sampleGradients: string | undefined;
  if (objective.kind === 'kl') {
    const { logits, classes } = objective.logits.graphForm(tape, block.output, outputShape);
    target = b.input('target', [rows, classes]);
    termList = [klDivergenceGraph(tape, target, logits, [rows, classes], 1, rows)];
  } else {
    target = b.input('target', outputShape);
    const rank = objective.fisherRank;
    fisher = rank ? { g: b.input('fisher_g', [rank, outputWidth]), bInverse: b.input('fisher_b_inverse', [rank, rank]), gMean: b.input('fisher_g_mean', [outputWidth]) } : undefined;
    sampleGradients = objective.sampleGradients ? b.input('sample_gradients', flat) : undefined;
    const output = tape.op('Reshape', [block.output, tape.int64s('shape', flat)], flat);
    termList = objective.loss.graphTerms({
      tape, output, target: tape.op('Reshape', [target, tape.int64s('shape', flat)], flat), rows, width: outputWidth, fisher, sampleGradients,
    });
  }
  const terms = tape.op('Concat', termList.map((t) => tape.op('Unsqueeze', [t, tape.int64s('axes', [0])], [1])), [termList.length], { axis: 0 });
  const termScales = b.input('term_scales', [termList.length]);
  const reconstruction = tape.op('ReduceSum', [tape.op('Mul', [terms, termScales], [termList.length])], [], { keepdims: 0 });
  const beta = b.input('beta', []);
  const roundingWeight = b.input('rounding_weight', []);
  const regularizer = roundings
    .map(({ rounding, shape }) => AdaRoundWeight.graphRegularizer(tape, rounding, shape, beta))
    .reduce((sum, r) => tape.op('Add', [sum, r], []), b.scalar(0));
  const loss = tape.op('Add', [reconstruction, tape.op('Mul', [regularizer, roundingWeight], [])], []);

  const gradients = tape.differentiate(loss, parameters.map((p) => p.input));
  [loss, terms, ...gradients].forEach((name) => b.output(name));
  return {
    bytes: b.toBytes(`reconstruction step of ${block.name}`),
    quantizedInput,
    fpInput,
    target,
    targetShape: [...b.shapeOf(target)],
    termScales,
    roundingWeight,
    beta,
    fisher,
    sampleGradients,
    parameters: parameters.map((p, i) => ({ ...p, gradient: gradients[i] })),
    loss,
    terms,
    inputShape: fullInputShape,
    outputShape,
  };
}

/** Values per sample of a [B, ...] shape. */
export function sampleWidth(shape: readonly number[]): number {
  return shape.slice(1).reduce((x, y) => x * y, 1);
}

export interface SnapshotGraphOptions {
  batchSize: number;
  /** The data nodes after the block, in order (the rest of the model, full precision). */
  restNodes: readonly number[];
  modelOutput: string;
  logits: LogitsFunction;
  temperature: number;
}

/** Names of a Fisher snapshot graph's inputs and outputs. */
export interface SnapshotGraph {
  bytes: Uint8Array;
  quantizedInput: string;
  target: string;
  /** softmax(z_fp / T) of the rows: [B, K]. */
  softTargets: string;
  /** 1 for a real row, 0 for padding (the last batch of a set not divisible by the batch). */
  rowWeights: string;
  parameters: { input: string; shape: number[] }[];
  /** Σ over rows of |∂KL/∂Ŷ| and of |Ŷ − Y|: [N] each. */
  gradientSum: string;
  deltaSum: string;
  inputShape: number[];
  outputShape: number[];
  classes: number;
}

/**
 * One batch of a Fisher snapshot: the quantized block in its current soft state (no QDrop), the
 * rest of the model in full precision, KL(softmax(z_fp/T) ‖ softmax(z/T)) summed over rows, and
 * per-row |∂KL/∂Ŷ| and |Ŷ − Y| summed over the batch.
 */
export function buildSnapshotGraph(model: QuantizedModel, block: Block, learner: BlockLearner, inputShape: number[], options: SnapshotGraphOptions): SnapshotGraph {
  const rows = options.batchSize;
  const fullInputShape = [rows, ...inputShape];
  const blockSection = traceSection(model, block.nodes, block.input, fullInputShape);
  const outputShape = blockSection.shapes.get(block.output) as number[];
  const b = trainingGraphBuilder(model);
  const tape = new Tape(b);
  const written = new Set<string>();
  const quantizedInput = b.input('block_input_quantized', fullInputShape);
  const { parameters } = writeQuantizedBlock(tape, model, block, learner, blockSection, written, quantizedInput);
  let modelOutput = block.output;
  let modelOutputShape = outputShape;
  if (options.restNodes.length > 0) {
    const restSection = traceSection(model, options.restNodes, block.output, outputShape);
    writeSection(tape, model, options.restNodes, restSection, written, () => undefined);
    modelOutput = options.modelOutput;
    modelOutputShape = restSection.shapes.get(modelOutput) as number[];
  }
  const { logits, classes } = options.logits.graphForm(tape, modelOutput, modelOutputShape);
  const softTargets = b.input('soft_targets', [rows, classes]);
  const kl = klDivergenceGraph(tape, softTargets, logits, [rows, classes], options.temperature, 1);
  const [gradient] = tape.differentiate(kl, [block.output]);

  const width = sampleWidth(outputShape);
  const rowWeights = b.input('row_weights', [rows, 1]);
  const summedOverRows = (t: string): string => {
    const perRow = b.op('Mul', [b.op('Abs', [b.op('Reshape', [t, b.int64s('shape', [rows, width])], [rows, width])], [rows, width]), rowWeights], [rows, width]);
    return b.op('ReduceSum', [perRow, b.int64s('axes', [0])], [width], { keepdims: 0 });
  };
  const target = b.input('target', outputShape);
  const gradientSum = summedOverRows(gradient);
  const deltaSum = summedOverRows(b.op('Sub', [block.output, target], outputShape));
  [gradientSum, deltaSum].forEach((name) => b.output(name));
  return {
    bytes: b.toBytes(`Fisher snapshot of ${block.name}`),
    quantizedInput,
    target,
    softTargets,
    rowWeights,
    parameters,
    gradientSum,
    deltaSum,
    inputShape: fullInputShape,
    outputShape,
    classes,
  };
}
