import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { DplrFisher, invertSymmetric, klDivergence, LOSSES } from '../../workers/fimaq/losses';
import { roundingBeta } from '../../workers/fimaq/reconstruct';

beforeAll(async () => {
  await initBackend();
});

describe('DPLR Fisher loss', () => {
  // Two snapshots over N = 3 outputs, and a batch of two samples' |Ŷ − Y|.
  const g = [[1, 2, 0], [0, 1, 3]];
  const d = [[1, 0, 1], [0, 2, 1]];
  const delta = [[0.5, 1, 0], [2, 0, 1]];

  it('equals a hand computation on small tensors', () => {
    const fisher = new DplrFisher(5);
    g.forEach((row, i) => fisher.add(tf.tensor1d(row), tf.tensor1d(d[i])));
    // B = D·Dᵀ = [[2, 1], [1, 5]], det 9, B⁻¹ = [[5, -1], [-1, 2]] / 9.
    // a = Δ·Gᵀ: sample 1 [0.5·1 + 1·2, 1·1] = [2.5, 1]; sample 2 [2, 3].
    // a·B⁻¹·aᵀ = (5a₁² − 2a₁a₂ + 2a₂²) / 9: sample 1 (31.25 − 5 + 2) / 9, sample 2 (20 − 12 + 18) / 9.
    const lowRank = ((31.25 - 5 + 2) / 9 + (20 - 12 + 18) / 9) / 2;
    // mean_rows(G) = [0.5, 1.5, 1.5]; Δ² = [[0.25, 1, 0], [4, 0, 1]]; mean(Δ² ⊙ ḡ) = (0.125 + 1.5 + 2 + 1.5) / 6.
    const diagonal = (0.125 + 1.5 + 2 + 1.5) / 6;
    const deltaTensor = tf.tensor2d(delta);
    expect(fisher.lowRank(deltaTensor).dataSync()[0]).toBeCloseTo(lowRank, 5);
    expect(fisher.diagonal(deltaTensor).dataSync()[0]).toBeCloseTo(diagonal, 5);
    // fisher_dplr's terms are exactly these two, built from |output − target|.
    const terms = LOSSES.fisher_dplr.terms({ output: tf.add(deltaTensor, 1), target: tf.onesLike(deltaTensor), fisher });
    expect(terms.map((t) => t.dataSync()[0])).toEqual([expect.closeTo(lowRank, 5), expect.closeTo(diagonal, 5)]);
    fisher.dispose();
  });

  it('keeps only the latest k snapshots', () => {
    const fisher = new DplrFisher(1);
    g.forEach((row, i) => fisher.add(tf.tensor1d(row), tf.tensor1d(d[i])));
    expect(fisher.snapshots).toBe(1);
    // Only the second snapshot: B = [5], mean G = [0, 1, 3].
    expect(fisher.diagonal(tf.tensor2d([[1, 1, 1]])).dataSync()[0]).toBeCloseTo(4 / 3, 5);
    fisher.dispose();
  });

  it('inverts small matrices, and a singular B with a ridge instead of failing', () => {
    expect(Array.from(invertSymmetric([2, 1, 1, 5], 2))).toEqual([expect.closeTo(5 / 9, 6), expect.closeTo(-1 / 9, 6), expect.closeTo(-1 / 9, 6), expect.closeTo(2 / 9, 6)]);
    expect(Array.from(invertSymmetric([1, 1, 1, 1], 2)).every(Number.isFinite)).toBe(true);
  });

  it('KL of the head is zero for equal distributions and positive otherwise', () => {
    const logits = tf.tensor2d([[1, 2, 3], [0, 0, 1]]);
    expect(klDivergence(tf.softmax(logits), logits).dataSync()[0]).toBeCloseTo(0, 6);
    expect(klDivergence(tf.softmax(logits), tf.reverse(logits, 1)).dataSync()[0]).toBeGreaterThan(0.1);
  });

  it('anneals β from 20 to 2 after a 20% warm-up without the rounding term', () => {
    expect(roundingBeta(0, 100)).toBeUndefined();
    expect(roundingBeta(19, 100)).toBeUndefined();
    expect(roundingBeta(20, 100)).toBe(20);
    expect(roundingBeta(60, 100)).toBeCloseTo(11);
    expect(roundingBeta(100, 100)).toBe(2);
  });
});
