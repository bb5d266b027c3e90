import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { fakeQuantize, UniformQuantizer } from '../../workers/engine/quantizer';
import { AdaRoundWeight } from '../../workers/fimaq/adaround';
import { alphaGrid, percentileLevels } from '../../workers/fimaq/scale-search';
import { foldFactors } from '../../workers/fimaq/reparameterize';

beforeAll(async () => {
  await initBackend();
});

describe('quantizer math on known integers', () => {
  it('3-bit, s = 0.5, z = 3: codes clamp to 0..7 and dequantize to (q - z)·s', () => {
    const x = tf.tensor1d([-5, -1.6, -0.24, 0, 0.26, 1.74, 2.0, 9]);
    // round(x / 0.5) + 3 = [-7, 0, 3, 3, 4, 6, 7, 21] → clamped [0, 0, 3, 3, 4, 6, 7, 7]
    const expected = [0, 0, 3, 3, 4, 6, 7, 7].map((q) => (q - 3) * 0.5);
    expect(Array.from(fakeQuantize(x, tf.scalar(0.5), tf.scalar(3), 3).dataSync())).toEqual(expected);
  });

  it('AdaRound initialization reproduces the weights inside the grid, and its hard rounding is round-to-nearest', () => {
    const weight = tf.tensor2d([[0.13, -0.42, 0.77], [1.9, -0.05, 0.31]]);
    const quantizer = new UniformQuantizer(4, tf.tensor2d([[0.1], [0.2]]), tf.tensor2d([[8], [4]]));
    const rounding = new AdaRoundWeight(weight, quantizer, 'test');
    // Channel 1 (s 0.2, z 4) covers [-0.8, 2.2]; channel 0 (s 0.1, z 8) covers [-0.8, 0.7]: 0.77 clips to 0.7.
    const soft = rounding.soft().arraySync() as number[][];
    [[0.13, -0.42, 0.7], [1.9, -0.05, 0.31]].forEach((row, r) => row.forEach((v, c) => expect(soft[r][c]).toBeCloseTo(v, 5)));
    const nearest = fakeQuantize(weight, quantizer.scale, quantizer.zeroPoint, 4);
    expect(Array.from(rounding.hard().dataSync())).toEqual(Array.from(nearest.dataSync()));
    rounding.dispose();
    quantizer.dispose();
  });

  it('the regularizer is 0 for decided roundings and largest at h = 0.5', () => {
    const quantizer = new UniformQuantizer(4, tf.scalar(1), tf.scalar(8));
    const decided = new AdaRoundWeight(tf.tensor1d([1, 2, -3]), quantizer, 'decided');
    const undecided = new AdaRoundWeight(tf.tensor1d([0.5]), quantizer, 'undecided');
    expect(decided.regularizer(2).dataSync()[0]).toBeCloseTo(0, 5);
    expect(undecided.regularizer(2).dataSync()[0]).toBeCloseTo(1, 5);
  });

  it('search grids: eq_n multipliers in [0.01, 1.2], percentiles 99 → 99.999 then the extreme', () => {
    const grid = alphaGrid(128);
    expect(grid).toHaveLength(128);
    expect(grid[0]).toBeCloseTo(0.01);
    expect(grid[127]).toBeCloseTo(1.2);
    const levels = percentileLevels(3);
    [0.99, 0.994995, 0.99999, 1].forEach((p, i) => expect(levels[i]).toBeCloseTo(p, 6));
  });

  it('fold factors map every channel range onto the per-tensor target range', () => {
    const min = tf.tensor1d([-1, -4, 0.5]);
    const max = tf.tensor1d([2, 1, 3]);
    const { r, b } = foldFactors(min, max, 4);
    // x' = x / r − b sends each channel's [min, max] (widened to hold 0) to one shared range.
    const lo = tf.sub(tf.div(tf.minimum(min, 0), r), b).dataSync();
    const hi = tf.sub(tf.div(tf.maximum(max, 0), r), b).dataSync();
    for (let c = 1; c < 3; c++) {
      expect(lo[c]).toBeCloseTo(lo[0], 5);
      expect(hi[c]).toBeCloseTo(hi[0], 5);
    }
  });
});
