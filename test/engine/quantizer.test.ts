import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { parseBits } from '../../workers/engine/bits';
import { fakeQuantize, minMaxParameters, quantizeToIntegers, roundStraightThrough } from '../../workers/engine/quantizer';

beforeAll(async () => {
  await initBackend();
});

describe('uniform asymmetric quantizer', () => {
  it('maps min/max onto 0..2^b-1 and reproduces known integers', () => {
    const { scale, zeroPoint } = minMaxParameters(tf.scalar(-1), tf.scalar(2), 2);
    expect(scale.dataSync()[0]).toBeCloseTo(1);
    expect(zeroPoint.dataSync()[0]).toBe(1);
    const x = tf.tensor1d([-1.4, -1, -0.4, 0, 0.6, 1.5, 2, 7]);
    expect(Array.from(quantizeToIntegers(x, scale, zeroPoint, 2).dataSync())).toEqual([0, 0, 1, 1, 2, 3, 3, 3]);
    expect(Array.from(fakeQuantize(x, scale, zeroPoint, 2).dataSync())).toEqual([-1, -1, 0, 0, 1, 2, 2, 2]);
  });

  it('keeps per-channel scales apart and widens ranges to contain zero', () => {
    const { scale, zeroPoint } = minMaxParameters(tf.tensor2d([[1], [-4]]), tf.tensor2d([[3], [-2]]), 4);
    expect(Array.from(scale.dataSync())).toEqual([0.2, 4 / 15].map((v) => Math.fround(v)));
    expect(Array.from(zeroPoint.dataSync())).toEqual([0, 15]);
  });

  it('passes gradients straight through the rounding', () => {
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(roundStraightThrough(x), 3)))(tf.tensor1d([0.2, 1.7]));
    expect(Array.from(g.dataSync())).toEqual([3, 3]);
  });
});

describe('bit widths', () => {
  it('parses uniform and mixed specs', () => {
    expect(parseBits('w4a4')).toEqual({ weightBits: 4, activationBits: 4 });
    expect(parseBits('W4A8')).toEqual({ weightBits: 4, activationBits: 8 });
  });

  it('rejects malformed and out-of-range specs', () => {
    expect(() => parseBits('4bit')).toThrow(/w4a4/);
    expect(() => parseBits('w16a16')).toThrow(/2\.\.8/);
  });
});
