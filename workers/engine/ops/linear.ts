/** Matrix products and convolution: the ops quantization sites are built on. */
import * as tf from '@tensorflow/tfjs';
import { transpose } from './transpose';
import { KernelTable, OpContext, attrFloat, attrInt, attrInts, attrString, required, unsupported } from './kernel';

/** Batched matmul with numpy semantics; a rank-2 right operand is applied as one big 2-D product. */
export function matMul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.rank === 1 || b.rank === 1) {
    const a2 = a.rank === 1 ? tf.expandDims(a, 0) : a;
    const b2 = b.rank === 1 ? tf.expandDims(b, -1) : b;
    const out = matMul(a2, b2);
    return tf.squeeze(out, [a.rank === 1 ? out.rank - 2 : out.rank - 1]);
  }
  if (b.rank === 2 && a.rank > 2) {
    const lead = a.shape.slice(0, -1);
    const flat = tf.reshape(a, [-1, a.shape[a.rank - 1] as number]);
    return tf.reshape(tf.matMul(flat, b as tf.Tensor2D), [...lead, b.shape[1] as number]);
  }
  if (a.rank === 2 && b.rank === 2) return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
  const batch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  // broadcastTo copies even when nothing broadcasts (a clone); skip it then.
  const batched = (t: tf.Tensor): tf.Tensor => {
    const shape = [...batch, ...t.shape.slice(-2)];
    return tf.reshape(tf.util.arraysEqual(t.shape, shape) ? t : tf.broadcastTo(t, shape), [-1, ...t.shape.slice(-2)]);
  };
  const a3 = batched(a);
  const b3 = batched(b);
  const out = tf.matMul(a3 as tf.Tensor3D, b3 as tf.Tensor3D);
  return tf.reshape(out, [...batch, ...out.shape.slice(-2)]);
}

function gemm(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const a = required(inputs, 0, ctx) as tf.Tensor2D;
  const b = required(inputs, 1, ctx) as tf.Tensor2D;
  const alpha = attrFloat(ctx.node, 'alpha', 1);
  const beta = attrFloat(ctx.node, 'beta', 1);
  let y: tf.Tensor = tf.matMul(a, b, attrInt(ctx.node, 'transA', 0) === 1, attrInt(ctx.node, 'transB', 0) === 1);
  if (alpha !== 1) y = tf.mul(y, alpha);
  const c = inputs[2];
  if (c) y = tf.add(y, beta === 1 ? c : tf.mul(c, beta));
  return [y];
}

/** Explicit [before, after] padding per spatial dim from ONNX pads or auto_pad. */
function spatialPadding(ctx: OpContext, inputSize: number[], kernel: number[], strides: number[], dilations: number[]): [number, number][] {
  const autoPad = attrString(ctx.node, 'auto_pad', 'NOTSET');
  const dims = inputSize.length;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    return inputSize.map((size, i) => {
      const out = Math.ceil(size / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size);
      const small = Math.floor(total / 2);
      return autoPad === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
    });
  }
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') unsupported(ctx, `auto_pad ${autoPad}`);
  const pads = attrInts(ctx.node, 'pads') ?? new Array<number>(dims * 2).fill(0);
  return inputSize.map((_, i) => [pads[i], pads[i + dims]]);
}

/**
 * A convolution whose stride equals its kernel (a ViT patch embedding) as one product of patches
 * with the flattened filter: exact, and differentiable on wasm, which lacks Conv2DBackpropFilter.
 */
function patchEmbedding(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const [n, c, h, width] = x.shape;
  const [out, , ph, pw] = w.shape;
  const rows = Math.floor(h / ph);
  const cols = Math.floor(width / pw);
  const cropped = rows * ph === h && cols * pw === width ? x : tf.slice(x, [0, 0, 0, 0], [n, c, rows * ph, cols * pw]);
  const patches = tf.reshape(transpose(tf.reshape(cropped, [n, c, rows, ph, cols, pw]), [0, 2, 4, 1, 3, 5]), [n * rows * cols, c * ph * pw]);
  const y = tf.matMul(patches, tf.reshape(w, [out, c * ph * pw]), false, true);
  return transpose(tf.reshape(y, [n, rows, cols, out]), [0, 3, 1, 2]);
}

function isPatchEmbedding(ctx: OpContext, kernel: number[], strides: number[], dilations: number[], group: number): boolean {
  const pads = attrInts(ctx.node, 'pads') ?? [];
  const autoPad = attrString(ctx.node, 'auto_pad', 'NOTSET');
  return group === 1 && (autoPad === 'NOTSET' || autoPad === 'VALID') && pads.every((p) => p === 0)
    && kernel.every((k, i) => k === strides[i] && dilations[i] === 1);
}

function conv(inputs: (tf.Tensor | undefined)[], ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const w = required(inputs, 1, ctx);
  if (x.rank !== 4) unsupported(ctx, `a ${x.rank - 2}-D convolution (only 2-D)`);
  const kernel = w.shape.slice(2);
  const strides = attrInts(ctx.node, 'strides') ?? [1, 1];
  const dilations = attrInts(ctx.node, 'dilations') ?? [1, 1];
  const group = attrInt(ctx.node, 'group', 1);
  const bias = inputs[2];
  if (isPatchEmbedding(ctx, kernel, strides, dilations, group)) {
    const y = patchEmbedding(x, w);
    return [bias ? tf.add(y, tf.reshape(bias, [1, -1, 1, 1])) : y];
  }
  const padding = spatialPadding(ctx, x.shape.slice(2), kernel, strides, dilations);
  // tfjs convolutions are channels-last.
  const xNhwc = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
  const pad: [[0, 0], [number, number], [number, number], [0, 0]] = [[0, 0], padding[0], padding[1], [0, 0]];
  let y: tf.Tensor4D;
  if (group === 1) {
    y = tf.conv2d(xNhwc, tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, [strides[0], strides[1]], pad, 'NHWC', [dilations[0], dilations[1]]);
  } else if (group === x.shape[1] && w.shape[1] === 1) {
    const multiplier = w.shape[0] / group;
    const filter = tf.reshape(tf.transpose(w, [2, 3, 1, 0]), [kernel[0], kernel[1], group, multiplier]) as tf.Tensor4D;
    y = tf.depthwiseConv2d(xNhwc, filter, [strides[0], strides[1]], pad, 'NHWC', [dilations[0], dilations[1]]);
  } else {
    unsupported(ctx, `grouped convolution with group=${group}`);
  }
  let out: tf.Tensor = tf.transpose(y, [0, 3, 1, 2]);
  if (bias) out = tf.add(out, tf.reshape(bias, [1, -1, 1, 1]));
  return [out];
}

export const linearKernels: KernelTable = {
  MatMul: (inputs, ctx) => [matMul(required(inputs, 0, ctx), required(inputs, 1, ctx))],
  Gemm: gemm,
  Conv: conv,
};
