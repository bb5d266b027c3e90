/**
 * Reconstruction losses (FIMAQ.md). Each loss is a weighted sum of terms; each term is divided by
 * its value at the latest normalization point (the first iteration, or the latest Fisher snapshot)
 * so that the rounding regularizer keeps the same relative weight whatever the block's scale.
 */
import * as tf from '@tensorflow/tfjs';
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

export interface LossDefinition {
  terms(inputs: LossInputs): tf.Scalar[];
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

export const LOSSES: Record<ReconstructionLoss, LossDefinition> = {
  mse: { terms: (i) => [tf.mean(tf.squaredDifference(i.output, i.target))], weights: [1] },
  fisher_diag: { terms: (i) => [fisherOf(i).diagonal(absoluteError(i))], weights: [2], snapshotRank: (rank) => rank },
  fisher_lr: { terms: (i) => [fisherOf(i).lowRank(absoluteError(i))], weights: [2], snapshotRank: () => 1 },
  fisher_dplr: {
    terms: (i) => {
      const delta = absoluteError(i);
      return [fisherOf(i).lowRank(delta), fisherOf(i).diagonal(delta)];
    },
    weights: [1, 1],
    snapshotRank: (rank) => rank,
  },
  fisher_brecq: {
    terms: (i) => {
      if (!i.sampleGradients) throw new Error('fisher_brecq needs per-sample gradients');
      return [tf.mean(tf.mul(tf.square(absoluteError(i)), tf.square(i.sampleGradients)))];
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
