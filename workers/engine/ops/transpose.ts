/**
 * Transposes planned for the wasm backend, whose generic kernel is very slow above rank 4 (a 5-D
 * qkv permute took ~20x longer than the same data moved by two 4-D transposes). Size-1 axes are
 * dropped and axes that stay adjacent are merged; what is still above rank 4 runs as a sequence of
 * block swaps, each a 4-D transpose [before, A, B, after] -> [before, B, A, after].
 */
import * as tf from '@tensorflow/tfjs';

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** The same permutation on fewer axes: drops size-1 axes and merges runs kept together. */
function simplify(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = perm.filter((axis) => shape[axis] !== 1);
  const groups: number[][] = [];
  for (const axis of kept) {
    const last = groups[groups.length - 1];
    const previous = last?.[last.length - 1];
    const nextKeptInInput = previous === undefined ? undefined : [...Array(shape.length).keys()].find((a) => a > previous && shape[a] !== 1);
    if (last && nextKeptInInput === axis) last.push(axis);
    else groups.push([axis]);
  }
  const inputOrder = [...groups].sort((a, b) => a[0] - b[0]);
  return {
    shape: inputOrder.map((g) => product(g.map((a) => shape[a]))),
    perm: groups.map((g) => inputOrder.indexOf(g)),
  };
}

export function transpose(x: tf.Tensor, perm?: readonly number[]): tf.Tensor {
  const order = perm ?? [...Array(x.rank).keys()].reverse();
  const outShape = order.map((a) => x.shape[a]);
  const plan = simplify(x.shape, order);
  if (plan.perm.every((a, i) => a === i)) return tf.reshape(x, outShape);
  if (plan.shape.length <= 4) return tf.reshape(tf.transpose(tf.reshape(x, plan.shape), plan.perm), outShape);
  // Selection by block swaps: bring the axis wanted at position i forward past the block before it.
  let current = tf.reshape(x, plan.shape);
  let dims = [...plan.shape];
  let axes = [...plan.perm.keys()];
  plan.perm.forEach((wanted, i) => {
    const j = axes.indexOf(wanted);
    if (j === i) return;
    const view = [product(dims.slice(0, i)), product(dims.slice(i, j)), dims[j], product(dims.slice(j + 1))];
    current = tf.transpose(tf.reshape(current, view), [0, 2, 1, 3]);
    dims = [...dims.slice(0, i), dims[j], ...dims.slice(i, j), ...dims.slice(j + 1)];
    axes = [...axes.slice(0, i), axes[j], ...axes.slice(i, j), ...axes.slice(j + 1)];
  });
  return tf.reshape(current, outShape);
}
