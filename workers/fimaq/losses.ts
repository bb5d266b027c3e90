/**
 * Reconstruction losses (docs/fimaq.md). Each loss is a weighted sum of terms; each term is divided by
 * its value at the latest normalization point (the first iteration, or the latest Fisher snapshot)
 * so that the rounding regularizer keeps the same relative weight whatever the block's scale.
 */
import * as tf from '@tensorflow/tfjs';
import { Tape } from '../engine/autodiff/tape';
import { ReconstructionLoss } from './options';

/**
 * The DPLR Fisher approximation of one block: G (k×N) holds the mean |∂KL/∂Y| of the last k
 * snapshots, D (k×N) their mean |Ŷ − Y|, B = D·Dᵀ. Δ is the per-sample |Ŷ − Y| (B×N).
 */
export class DplrFisher {
  private gradients: tf.Tensor[] = [];
  private deltas: tf.Tensor[] = [];
  private g: tf.Tensor | undefined;
  private gMean: tf.Tensor | undefined;
  private bInverse: tf.Tensor | undefined;

  constructor(readonly rank: number) {}

  get snapshots(): number {
    return this.gradients.length;
  }

  /** Adds a snapshot (takes ownership of the [N] vectors), keeping the latest `rank`. */
  add(meanGradient: tf.Tensor, meanDelta: tf.Tensor): void {
    this.gradients.push(meanGradient);
    this.deltas.push(meanDelta);
    while (this.gradients.length > this.rank) {
      this.gradients.shift()?.dispose();
      this.deltas.shift()?.dispose();
    }
    this.disposeDerived();
    const d = tf.stack(this.deltas);
    const b = tf.matMul(d, d, false, true);
    this.bInverse = tf.tensor(invertSymmetric(b.dataSync(), this.deltas.length), b.shape);
    [d, b].forEach((t) => t.dispose());
    this.g = tf.stack(this.gradients);
    this.gMean = tf.mean(this.g, 0);
  }

  /** loss₁ = mean over samples of a·B⁻¹·aᵀ with a = Δ·Gᵀ. */
  lowRank(delta: tf.Tensor): tf.Scalar {
    return tf.tidy(() => {
      const a = tf.matMul(delta, this.required(this.g), false, true);
      return tf.mean(tf.sum(tf.mul(tf.matMul(a, this.required(this.bInverse)), a), 1));
    });
  }

  /** loss₂ = mean(Δ² ⊙ mean_rows(G)). */
  diagonal(delta: tf.Tensor): tf.Scalar {
    return tf.tidy(() => tf.mean(tf.mul(tf.square(delta), this.required(this.gMean))));
  }

  /** G, B⁻¹ and mean_rows(G) on the host, zero-padded to `rank` rows so a training graph keeps fixed shapes. */
  hostFactors(): { g: Float32Array; bInverse: Float32Array; gMean: Float32Array } {
    const g = this.required(this.g);
    const [held, width] = g.shape;
    const paddedG = new Float32Array(this.rank * width);
    paddedG.set(g.dataSync());
    const bInverse = new Float32Array(this.rank * this.rank);
    const inverse = this.required(this.bInverse).dataSync();
    for (let r = 0; r < held; r++) bInverse.set(inverse.subarray(r * held, (r + 1) * held), r * this.rank);
    return { g: paddedG, bInverse, gMean: Float32Array.from(this.required(this.gMean).dataSync()) };
  }

  private required(t: tf.Tensor | undefined): tf.Tensor {
    if (!t) throw new Error('the Fisher approximation has no snapshot yet');
    return t;
  }

  private disposeDerived(): void {
    [this.g, this.gMean, this.bInverse].forEach((t) => t?.dispose());
  }

  dispose(): void {
    this.disposeDerived();
    [...this.gradients, ...this.deltas].forEach((t) => t.dispose());
    this.gradients = [];
    this.deltas = [];
  }
}

/**
 * Inverse of a small symmetric positive semi-definite matrix (Gauss–Jordan in float64). Nearly
 * identical snapshots make B singular; then a ridge of 1e-6·trace/k is added, the smallest change
 * that keeps the low-rank term finite.
 */
export function invertSymmetric(values: ArrayLike<number>, k: number): Float32Array {
  const attempt = (ridge: number): Float64Array | undefined => {
    const a = Float64Array.from({ length: k * 2 * k }, (_, i) => {
      const row = Math.floor(i / (2 * k));
      const col = i % (2 * k);
      if (col < k) return values[row * k + col] + (row === col ? ridge : 0);
      return col - k === row ? 1 : 0;
    });
    const width = 2 * k;
    for (let c = 0; c < k; c++) {
      let pivot = c;
      for (let r = c + 1; r < k; r++) if (Math.abs(a[r * width + c]) > Math.abs(a[pivot * width + c])) pivot = r;
      const scale = a[pivot * width + c];
      if (Math.abs(scale) < 1e-30) return undefined;
      for (let j = 0; j < width; j++) [a[c * width + j], a[pivot * width + j]] = [a[pivot * width + j], a[c * width + j]];
      for (let j = 0; j < width; j++) a[c * width + j] /= scale;
      for (let r = 0; r < k; r++) {
        if (r === c) continue;
        const f = a[r * width + c];
        if (f !== 0) for (let j = 0; j < width; j++) a[r * width + j] -= f * a[c * width + j];
      }
    }
    const inverse = Float64Array.from({ length: k * k }, (_, i) => a[Math.floor(i / k) * width + k + (i % k)]);
    return inverse.every(Number.isFinite) ? inverse : undefined;
  };
  let trace = 0;
  for (let i = 0; i < k; i++) trace += values[i * k + i];
  const inverse = attempt(0) ?? attempt((1e-6 * trace) / k || 1e-12);
  if (!inverse) throw new Error('the Fisher snapshot matrix B cannot be inverted');
  return Float32Array.from(inverse);
}

/** What a loss needs at one iteration. */
export interface LossInputs {
  /** Block output and its full-precision target, flattened per sample: [B, N]. */
  output: tf.Tensor;
  target: tf.Tensor;
  fisher?: DplrFisher;
  /** Per-sample |∂KL/∂Y| ([B, N]), for fisher_brecq. */
  sampleGradients?: tf.Tensor;
}

/** The same inputs as tensors of a training graph ([B, N] block output and target). */
export interface GraphLossInputs {
  tape: Tape;
  output: string;
  target: string;
  rows: number;
  width: number;
  /** G ([k, N]), B⁻¹ ([k, k]) and mean_rows(G) ([N]), zero-padded as `DplrFisher.hostFactors` gives them. */
  fisher?: { g: string; bInverse: string; gMean: string };
  sampleGradients?: string;
}

export interface LossDefinition {
  terms(inputs: LossInputs): tf.Scalar[];
  /** `terms` written into a training graph: one scalar tensor per term. */
  graphTerms(inputs: GraphLossInputs): string[];
  /** Weight of each normalized term. fisher_lr and fisher_diag weigh 2 so the rec/rounding balance matches DPLR's p₁ + p₂ = 2. */
  weights: number[];
  /** Whether Fisher snapshots (and renormalization at each) drive this loss, and how many are kept. */
  snapshotRank?: (rank: number) => number;
}

const absoluteError = ({ output, target }: LossInputs): tf.Tensor => tf.abs(tf.sub(output, target));

function fisherOf(inputs: LossInputs): DplrFisher {
  if (!inputs.fisher) throw new Error('this loss needs Fisher snapshots');
  return inputs.fisher;
}

/** The graph forms of the terms, over [B, N] tensors. */
const graph = {
  mean(i: GraphLossInputs, t: string, count = i.rows * i.width): string {
    return i.tape.op('Mul', [i.tape.op('ReduceSum', [t], [], { keepdims: 0 }), i.tape.b.scalar(1 / count)], []);
  },
  difference: (i: GraphLossInputs): string => i.tape.op('Sub', [i.output, i.target], [i.rows, i.width]),
  absoluteError: (i: GraphLossInputs): string => i.tape.op('Abs', [graph.difference(i)], [i.rows, i.width]),
  square: (i: GraphLossInputs, t: string): string => i.tape.op('Mul', [t, t], [i.rows, i.width]),
  fisher(i: GraphLossInputs): NonNullable<GraphLossInputs['fisher']> {
    if (!i.fisher) throw new Error('this loss needs Fisher snapshots');
    return i.fisher;
  },
  /** mean(Δ² ⊙ mean_rows(G)). */
  diagonal: (i: GraphLossInputs, delta: string): string => graph.mean(i, i.tape.op('Mul', [graph.square(i, delta), graph.fisher(i).gMean], [i.rows, i.width])),
  /** mean over samples of a·B⁻¹·aᵀ with a = Δ·Gᵀ. */
  lowRank(i: GraphLossInputs, delta: string): string {
    const { tape } = i;
    const { g, bInverse } = graph.fisher(i);
    const rank = tape.b.shapeOf(g)[0];
    const a = tape.op('MatMul', [delta, tape.op('Transpose', [g], [i.width, rank], { perm: [1, 0] })], [i.rows, rank]);
    return graph.mean(i, tape.op('Mul', [tape.op('MatMul', [a, bInverse], [i.rows, rank]), a], [i.rows, rank]), i.rows);
  },
};

export const LOSSES: Record<ReconstructionLoss, LossDefinition> = {
  mse: {
    terms: (i) => [tf.mean(tf.squaredDifference(i.output, i.target))],
    graphTerms: (i) => [graph.mean(i, graph.square(i, graph.difference(i)))],
    weights: [1],
  },
  fisher_diag: {
    terms: (i) => [fisherOf(i).diagonal(absoluteError(i))],
    graphTerms: (i) => [graph.diagonal(i, graph.absoluteError(i))],
    weights: [2],
    snapshotRank: (rank) => rank,
  },
  fisher_lr: {
    terms: (i) => [fisherOf(i).lowRank(absoluteError(i))],
    graphTerms: (i) => [graph.lowRank(i, graph.absoluteError(i))],
    weights: [2],
    snapshotRank: () => 1,
  },
  fisher_dplr: {
    terms: (i) => {
      const delta = absoluteError(i);
      return [fisherOf(i).lowRank(delta), fisherOf(i).diagonal(delta)];
    },
    graphTerms: (i) => {
      const delta = graph.absoluteError(i);
      return [graph.lowRank(i, delta), graph.diagonal(i, delta)];
    },
    weights: [1, 1],
    snapshotRank: (rank) => rank,
  },
  fisher_brecq: {
    terms: (i) => {
      if (!i.sampleGradients) throw new Error('fisher_brecq needs per-sample gradients');
      return [tf.mean(tf.mul(tf.square(absoluteError(i)), tf.square(i.sampleGradients)))];
    },
    graphTerms: (i) => {
      if (!i.sampleGradients) throw new Error('fisher_brecq needs per-sample gradients');
      return [graph.mean(i, i.tape.op('Mul', [graph.square(i, graph.absoluteError(i)), graph.square(i, i.sampleGradients)], [i.rows, i.width]))];
    },
    weights: [1],
  },
};

/** KL(softmax(target) ‖ softmax(output)) averaged over the batch: the head block's loss. */
export function klDivergence(targetProbabilities: tf.Tensor, outputLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const logTarget = tf.log(tf.maximum(targetProbabilities, 1e-12));
    return tf.div(tf.sum(tf.mul(targetProbabilities, tf.sub(logTarget, tf.logSoftmax(outputLogits)))), outputLogits.shape[0]);
  });
}

/**
 * Σ P·(log P − log softmax(z/T)) ÷ `divisor` recorded on a tape: the head block's loss (T = 1,
 * averaged over rows) and the KL whose gradients the Fisher snapshots take (T, summed).
 */
export function klDivergenceGraph(tape: Tape, probabilities: string, logits: string, shape: [number, number], temperature: number, divisor: number): string {
  const { b } = tape;
  const scaled = temperature === 1 ? logits : tape.op('Mul', [logits, b.scalar(1 / temperature)], shape);
  const logQ = tape.op('LogSoftmax', [scaled], shape, { axis: -1 });
  const logP = tape.opaque('Log', [tape.opaque('Max', [probabilities, b.scalar(1e-12)], shape)], shape);
  const summed = tape.op('ReduceSum', [tape.op('Mul', [probabilities, tape.op('Sub', [logP, logQ], shape)], shape)], [], { keepdims: 0 });
  return divisor === 1 ? summed : tape.op('Mul', [summed, b.scalar(1 / divisor)], []);
}
