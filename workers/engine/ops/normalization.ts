/** Normalizations and reductions: LayerNormalization, Softmax family, Reduce*. */
import * as tf from '@tensorflow/tfjs';
import { transpose } from './transpose';
import { KernelTable, OpContext, OpKernel, attrFloat, attrInt, axesOf, normalizeAxis, required } from './kernel';

function layerNormalization(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const axis = normalizeAxis(attrInt(ctx.node, 'axis', -1), x.rank);
  const eps = attrFloat(ctx.node, 'epsilon', 1e-5);
  const axes = Array.from({ length: x.rank - axis }, (_, i) => axis + i);
  const mean = tf.mean(x, axes, true);
  const centered = tf.sub(x, mean);
  const invStd = tf.rsqrt(tf.add(tf.mean(tf.mul(centered, centered), axes, true), eps));
  let y = tf.mul(centered, invStd);
  const scale = inputs[1];
  if (scale) y = tf.mul(y, scale);
  const bias = inputs[2];
  if (bias) y = tf.add(y, bias);
  return [y, mean, invStd];
}

/**
 * Softmax-like ops: opset >= 13 normalizes along one axis; earlier opsets flatten the input into
 * [prod(shape[:axis]), prod(shape[axis:])] and normalize the rows.
 */
function softmaxFamily(fn: (x: tf.Tensor) => tf.Tensor): OpKernel {
  return (inputs, ctx) => {
    const x = required(inputs, 0, ctx);
    if (ctx.opset >= 13) {
      const axis = normalizeAxis(attrInt(ctx.node, 'axis', -1), x.rank);
      if (axis === x.rank - 1) return [fn(x)];
      const perm = Array.from({ length: x.rank }, (_, i) => i);
      perm[axis] = x.rank - 1;
      perm[x.rank - 1] = axis;
      return [transpose(fn(transpose(x, perm)), perm)];
    }
    const axis = normalizeAxis(attrInt(ctx.node, 'axis', 1), x.rank);
    const rows = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    return [tf.reshape(fn(tf.reshape(x, [rows, -1])), x.shape)];
  };
}

function reduce(fn: (x: tf.Tensor, axes: number[], keep: boolean) => tf.Tensor): OpKernel {
  return (inputs, ctx) => {
    const x = required(inputs, 0, ctx);
    // ReduceSum took axes as an input from opset 13, the other reductions from opset 18.
    const axes = axesOf(inputs, 1, ctx, ctx.node.opType === 'ReduceSum' ? 13 : 18);
    const keep = attrInt(ctx.node, 'keepdims', 1) === 1;
    if (!axes || axes.length === 0) {
      if (attrInt(ctx.node, 'noop_with_empty_axes', 0) === 1) return [x];
      return [fn(x, Array.from({ length: x.rank }, (_, i) => i), keep)];
    }
    return [fn(x, axes.map((a) => normalizeAxis(a, x.rank)), keep)];
  };
}

export const normalizationKernels: KernelTable = {
  LayerNormalization: layerNormalization,
  Softmax: softmaxFamily((x) => tf.softmax(x)),
  LogSoftmax: softmaxFamily((x) => tf.logSoftmax(x)),
  ReduceMean: reduce((x, a, k) => tf.mean(x, a, k)),
  ReduceSum: reduce((x, a, k) => tf.sum(x, a, k)),
  ReduceMax: reduce((x, a, k) => tf.max(x, a, k)),
  ReduceMin: reduce((x, a, k) => tf.min(x, a, k)),
  ReduceProd: reduce((x, a, k) => tf.prod(x, a, k)),
  ReduceL2: reduce((x, a, k) => tf.sqrt(tf.sum(tf.mul(x, x), a, k))),
  ReduceSumSquare: reduce((x, a, k) => tf.sum(tf.mul(x, x), a, k)),
};
