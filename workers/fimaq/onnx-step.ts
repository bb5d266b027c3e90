/**
 * Runs a block's training graph (training-graph.ts) on onnxruntime: gathers the iteration's rows
 * from host copies of the reconstruction set, feeds the learned parameters from the learner's
 * host arrays and returns the loss, its terms and the gradients in parameter order.
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { BlockLearner } from './block-learner';
import { sampleWidth, SnapshotGraph, TrainingGraph } from './training-graph';

/** Host copies of the reconstruction set, [count, width] row-major. */
export interface HostRows {
  quantized: Float32Array;
  fp: Float32Array;
  target: Float32Array;
  sampleGradients?: Float32Array;
}

export interface StepInputs {
  indices: Int32Array;
  /** β of the rounding regularizer; undefined during warm-up (regularizer off). */
  beta: number | undefined;
  roundingWeight: number;
  /** Weight ÷ normalizer of every loss term. */
  termScales: number[];
}

export interface StepResult {
  loss: number;
  terms: Float32Array;
  /** In `learner.parameters` order. */
  grads: Float32Array[];
}

/** The rows `indices` of a [count, ...] host array, as a tensor of `shape` ([indices.length, ...]). */
function rowsTensor(source: Float32Array, indices: Int32Array, shape: readonly number[]): Tensor {
  const width = sampleWidth(shape);
  const rows = new Float32Array(indices.length * width);
  indices.forEach((row, i) => rows.set(source.subarray(row * width, (row + 1) * width), i * width));
  return new Tensor('float32', rows, shape);
}

/** The learner's current parameters as feeds of a graph's parameter inputs (same order). */
function parameterFeeds(learner: BlockLearner, inputs: readonly { input: string; shape: number[] }[]): Record<string, Tensor> {
  return Object.fromEntries(learner.parameters.map((p, i) => [inputs[i].input, new Tensor('float32', p.host, inputs[i].shape)]));
}

export class OnnxTrainingStep {
  private fisherFeeds: Record<string, Tensor> = {};

  private constructor(
    private readonly session: InferenceSession,
    private readonly graph: TrainingGraph,
    /** The reconstruction set's rows this step reads (the snapshots read the same ones). */
    readonly rows: HostRows,
    private readonly learner: BlockLearner,
  ) {}

  static async create(graph: TrainingGraph, rows: HostRows, learner: BlockLearner, threads = 0): Promise<OnnxTrainingStep> {
    const session = await InferenceSession.create(graph.bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: threads });
    return new OnnxTrainingStep(session, graph, rows, learner);
  }

  /** New Fisher factors (after a snapshot), zero-padded to the graph's rank. */
  setFisher(factors: { g: Float32Array; bInverse: Float32Array; gMean: Float32Array }): void {
    const names = this.graph.fisher;
    if (!names) return;
    const rank = factors.bInverse.length ** 0.5;
    const width = sampleWidth(this.graph.outputShape);
    this.fisherFeeds = {
      [names.g]: new Tensor('float32', factors.g, [rank, width]),
      [names.bInverse]: new Tensor('float32', factors.bInverse, [rank, rank]),
      [names.gMean]: new Tensor('float32', factors.gMean, [width]),
    };
  }

  async run(inputs: StepInputs): Promise<StepResult> {
    const { graph, rows } = this;
    const { indices } = inputs;
    const feeds: Record<string, Tensor> = {
      ...this.fisherFeeds,
      ...parameterFeeds(this.learner, graph.parameters),
      [graph.quantizedInput]: rowsTensor(rows.quantized, indices, graph.inputShape),
      [graph.target]: rowsTensor(rows.target, indices, graph.targetShape),
      [graph.termScales]: new Tensor('float32', Float32Array.from(inputs.termScales), [inputs.termScales.length]),
      [graph.beta]: new Tensor('float32', Float32Array.of(inputs.beta ?? 2), []),
      [graph.roundingWeight]: new Tensor('float32', Float32Array.of(inputs.beta === undefined ? 0 : inputs.roundingWeight), []),
    };
    if (graph.fpInput) feeds[graph.fpInput] = rowsTensor(rows.fp, indices, graph.inputShape);
    if (graph.sampleGradients && rows.sampleGradients) feeds[graph.sampleGradients] = rowsTensor(rows.sampleGradients, indices, [indices.length, sampleWidth(graph.outputShape)]);
    const out = await this.session.run(feeds);
    return {
      loss: (out[graph.loss].data as Float32Array)[0],
      terms: out[graph.terms].data as Float32Array,
      grads: graph.parameters.map((p) => out[p.gradient].data as Float32Array),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * A Fisher snapshot on onnxruntime (training-graph.ts `buildSnapshotGraph`): runs the whole
 * reconstruction set in batches, padding the last one, and returns mean |∂KL/∂Ŷ| and mean |Ŷ − Y|.
 */
export class OnnxFisherSnapshot {
  private constructor(
    private readonly session: InferenceSession,
    private readonly graph: SnapshotGraph,
    private readonly rows: { quantized: Float32Array; target: Float32Array; softTargets: Float32Array; count: number },
    private readonly learner: BlockLearner,
  ) {}

  static async create(graph: SnapshotGraph, rows: OnnxFisherSnapshot['rows'], learner: BlockLearner, threads = 0): Promise<OnnxFisherSnapshot> {
    const session = await InferenceSession.create(graph.bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: threads });
    return new OnnxFisherSnapshot(session, graph, rows, learner);
  }

  async run(): Promise<{ meanGradient: Float32Array; meanDelta: Float32Array }> {
    const { graph, rows } = this;
    const batch = graph.inputShape[0];
    const width = sampleWidth(graph.outputShape);
    const meanGradient = new Float32Array(width);
    const meanDelta = new Float32Array(width);
    const parameters = parameterFeeds(this.learner, graph.parameters);
    for (let start = 0; start < rows.count; start += batch) {
      // The last batch repeats its final row as padding, weighted 0.
      const indices = Int32Array.from({ length: batch }, (_, i) => Math.min(start + i, rows.count - 1));
      const weights = Float32Array.from({ length: batch }, (_, i) => (start + i < rows.count ? 1 : 0));
      const out = await this.session.run({
        ...parameters,
        [graph.quantizedInput]: rowsTensor(rows.quantized, indices, graph.inputShape),
        [graph.target]: rowsTensor(rows.target, indices, graph.outputShape),
        [graph.softTargets]: rowsTensor(rows.softTargets, indices, [batch, graph.classes]),
        [graph.rowWeights]: new Tensor('float32', weights, [batch, 1]),
      });
      const [g, d] = [out[graph.gradientSum].data as Float32Array, out[graph.deltaSum].data as Float32Array];
      for (let j = 0; j < width; j++) {
        meanGradient[j] += g[j] / rows.count;
        meanDelta[j] += d[j] / rows.count;
      }
    }
    return { meanGradient, meanDelta };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
