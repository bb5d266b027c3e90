/**
 * The wasm BatchMatMul routing (workers/engine/backend.ts): transposed single products and large
 * batched products run on XNNPACK one matrix at a time; results must match a plain reference.
 * Also gatherRows (the heap copy of rows that replaces wasm's Gather in reconstruction) and the
 * Identity kernel that shares data instead of copying.
 */
import * as tf from '@tensorflow/tfjs';
import { gatherRows, initBackend } from '../../workers/engine/backend';

beforeAll(async () => {
  await initBackend('wasm');
});

/** a·b by broadcast multiply and sum (no BatchMatMul kernel), over the last two axes. */
function reference(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sum(tf.mul(tf.expandDims(a, -1), tf.expandDims(b, -3)), -2));
}

function maxDifference(x: tf.Tensor, y: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(x, y))).dataSync()[0]);
}

const swap = (t: tf.Tensor): tf.Tensor => tf.transpose(t, [...t.shape.keys()].map((i) => (i < t.rank - 2 ? i : 2 * t.rank - 3 - i)));

describe('wasm matMul routing', () => {
  it('uses the wasm backend', () => {
    expect(tf.getBackend()).toBe('wasm');
  });

  it.each([
    ['single', [40, 24], [24, 36]],
    ['batched small', [6, 5, 7], [6, 7, 3]],
    ['batched large (one product per entry)', [5, 40, 32], [5, 32, 30]],
    ['rank 4 batched large', [2, 3, 33, 32], [2, 3, 32, 17]],
    ['left broadcast', [1, 40, 32], [4, 32, 30]],
    ['right broadcast', [4, 40, 32], [1, 32, 30]],
  ])('%s: every transpose combination matches the reference', (_, aShape, bShape) => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const a = tf.randomNormal(aShape, 0, 1, 'float32', 1);
      const b = tf.randomNormal(bShape, 0, 1, 'float32', 2);
      const expected = reference(a, b);
      for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
        const product = tf.matMul(ta ? swap(a) : a, tb ? swap(b) : b, ta, tb);
        expect(product.shape).toEqual(expected.shape);
        expect(maxDifference(product, expected)).toBeLessThan(1e-4);
      }
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gradients through a large batched product match the reference', () => {
    const a = tf.randomNormal([3, 40, 32], 0, 1, 'float32', 3);
    const b = tf.randomNormal([3, 32, 30], 0, 1, 'float32', 4);
    const weights = tf.randomNormal([3, 40, 30], 0, 1, 'float32', 5);
    const loss = (f: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor) => (x: tf.Tensor, y: tf.Tensor): tf.Scalar => tf.sum(tf.mul(f(x, y), weights));
    const [da, db] = tf.grads(loss((x, y) => tf.matMul(x, y)))([a, b]);
    const [ra, rb] = tf.grads(loss(reference))([a, b]);
    expect(maxDifference(da, ra)).toBeLessThan(1e-4);
    expect(maxDifference(db, rb)).toBeLessThan(1e-4);
  });
});

describe('gatherRows', () => {
  it('picks the same rows as tf.gather, repeated rows included, and rejects rows outside the tensor', () => {
    const x = tf.randomNormal([7, 3, 4], 0, 1, 'float32', 6);
    const rows = Int32Array.from([6, 0, 3, 3]);
    const picked = gatherRows(x, rows);
    expect(picked.shape).toEqual([4, 3, 4]);
    expect(Array.from(picked.dataSync())).toEqual(Array.from(tf.gather(x, tf.tensor1d(rows, 'int32')).dataSync()));
    expect(() => gatherRows(x, [7])).toThrow(/outside/);
  });
});

describe('Identity shares data on wasm', () => {
  it('a clone outlives its source, and the buffer is freed once both are gone', () => {
    const bytes = tf.memory().numBytes;
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    const v = tf.variable(y);
    y.dispose();
    const next = tf.add(v, 1) as tf.Tensor1D;
    v.assign(next);
    next.dispose();
    expect(Array.from(v.dataSync())).toEqual([2, 3, 4]);
    v.dispose();
    expect(tf.memory().numBytes).toBe(bytes);
  });
});
