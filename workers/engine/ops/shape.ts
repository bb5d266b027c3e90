/** Shape manipulation, indexing, constants and casts. Shape-valued operands are small int32 tensors. */
import * as tf from '@tensorflow/tfjs';
import { transpose } from './transpose';
import { onnx } from '../onnx/proto';
import { hostDType } from '../onnx/tensor';
import {
  KernelTable, OpContext, attrFloat, attrInt, attrInts, attrString, attrTensor, axesOf, hostToTf, intsOf, normalizeAxis, required,
  unsupported,
} from './kernel';

type Inputs = (tf.Tensor | undefined)[];

function reshape(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const allowZero = attrInt(ctx.node, 'allowzero', 0) === 1;
  const target = intsOf(required(inputs, 1, ctx)).map((d, i) => (d === 0 && !allowZero ? x.shape[i] : d));
  return [tf.reshape(x, target)];
}

function transposeKernel(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  return [transpose(x, attrInts(ctx.node, 'perm'))];
}

function concat(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const present = inputs.filter((t): t is tf.Tensor => t !== undefined);
  const axis = normalizeAxis(attrInt(ctx.node, 'axis', 0), present[0].rank);
  // ONNX allows empty operands (e.g. a [0] shape piece); tfjs concat does not need them.
  const nonEmpty = present.filter((t) => t.size > 0);
  if (nonEmpty.length === 0) return [present[0]];
  return [nonEmpty.length === 1 ? tf.clone(nonEmpty[0]) : tf.concat(nonEmpty, axis)];
}

/**
 * tfjs differentiates gather with UnsortedSegmentSum, which the wasm backend lacks; the gradient
 * here scatters through a one-hot product instead (cls-token selection, qkv unbinding).
 */
function differentiableGather(x: tf.Tensor, indices: tf.Tensor, axis: number): tf.Tensor {
  const shape = x.shape;
  const before = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const after = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const gathered = tf.customGrad(((value: tf.Tensor, index: tf.Tensor, save: tf.GradSaveFunc) => {
    // The tape keeps saved tensors alive until the backward pass, beyond the forward tidy scopes.
    save([index]);
    return {
      value: tf.gather(value, index, axis),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [kept] = saved;
        const dy3 = tf.reshape(dy, [before, kept.size, after]);
        const oneHot = tf.cast(tf.oneHot(tf.reshape(kept, [-1]), shape[axis]), 'float32');
        const scattered = tf.matMul(tf.reshape(tf.transpose(dy3, [0, 2, 1]), [before * after, kept.size]), oneHot);
        return [tf.reshape(tf.transpose(tf.reshape(scattered, [before, after, shape[axis]]), [0, 2, 1]), shape), tf.zerosLike(kept)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return gathered(x, indices);
}

/** Few indices (cls-token selection, qkv unbinding) as contiguous slices of a 3-D view: fast on wasm, differentiable. */
const SLICED_GATHER_LIMIT = 16;

function slicedGather(x: tf.Tensor, indices: number[], indexShape: number[], axis: number): tf.Tensor {
  const outer = x.shape.slice(0, axis);
  const inner = x.shape.slice(axis + 1);
  const before = outer.reduce((a, b) => a * b, 1);
  const after = inner.reduce((a, b) => a * b, 1);
  const view = tf.reshape(x, [before, x.shape[axis], after]);
  const slices = indices.map((i) => tf.slice(view, [0, i, 0], [before, 1, after]));
  const joined = slices.length === 1 ? slices[0] : tf.concat(slices, 1);
  return tf.reshape(joined, [...outer, ...indexShape, ...inner]);
}

function gather(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const axis = normalizeAxis(attrInt(ctx.node, 'axis', 0), x.rank);
  const indexTensor = required(inputs, 1, ctx);
  if (x.dtype === 'float32' && indexTensor.size > 0 && indexTensor.size <= SLICED_GATHER_LIMIT) {
    const indices = intsOf(indexTensor).map((i) => (i < 0 ? i + x.shape[axis] : i));
    return [slicedGather(x, indices, indexTensor.shape, axis)];
  }
  const indices = tf.cast(indexTensor, 'int32');
  const wrapped = tf.where(tf.less(indices, tf.scalar(0, 'int32')), tf.add(indices, tf.scalar(x.shape[axis], 'int32')), indices);
  return [x.dtype === 'float32' ? differentiableGather(x, wrapped, axis) : tf.gather(x, wrapped, axis)];
}

function sliceParameters(inputs: Inputs, ctx: OpContext): { starts: number[]; ends: number[]; axes?: number[]; steps?: number[] } {
  if (ctx.opset < 10) {
    return { starts: attrInts(ctx.node, 'starts') ?? [], ends: attrInts(ctx.node, 'ends') ?? [], axes: attrInts(ctx.node, 'axes') };
  }
  const optional = (i: number): number[] | undefined => (inputs[i] ? intsOf(inputs[i] as tf.Tensor) : undefined);
  return { starts: intsOf(required(inputs, 1, ctx)), ends: intsOf(required(inputs, 2, ctx)), axes: optional(3), steps: optional(4) };
}

function slice(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const { starts, ends, axes, steps } = sliceParameters(inputs, ctx);
  const begin = new Array<number>(x.rank).fill(0);
  const end = [...x.shape];
  const strides = new Array<number>(x.rank).fill(1);
  let endMask = 0;
  starts.forEach((s, i) => {
    const axis = normalizeAxis(axes ? axes[i] : i, x.rank);
    const dim = x.shape[axis];
    const step = steps ? steps[i] : 1;
    const clampIndex = (v: number, lo: number, hi: number): number => Math.min(Math.max(v < 0 ? v + dim : v, lo), hi);
    strides[axis] = step;
    if (step > 0) {
      begin[axis] = clampIndex(s, 0, dim);
      end[axis] = clampIndex(ends[i], 0, dim);
    } else {
      begin[axis] = clampIndex(s, -1, dim - 1);
      const e = ends[i] < -dim ? -1 : clampIndex(ends[i], -1, dim - 1);
      // A negative-step slice that runs to the front has no representable end index in tfjs.
      if (e === -1) endMask |= 1 << axis;
      end[axis] = e;
    }
  });
  return [tf.stridedSlice(x, begin, end, strides, 0, endMask)];
}

function shape(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const dims = required(inputs, 0, ctx).shape;
  const rank = dims.length;
  const clampAxis = (a: number): number => Math.min(Math.max(a < 0 ? a + rank : a, 0), rank);
  const start = clampAxis(attrInt(ctx.node, 'start', 0));
  const end = clampAxis(attrInt(ctx.node, 'end', rank));
  return [tf.tensor1d(dims.slice(start, end), 'int32')];
}

function unsqueeze(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const axes = axesOf(inputs, 1, ctx, 13) ?? [];
  const rank = x.rank + axes.length;
  const inserted = new Set(axes.map((a) => normalizeAxis(a, rank)));
  const dims: number[] = [];
  let next = 0;
  for (let i = 0; i < rank; i++) dims.push(inserted.has(i) ? 1 : x.shape[next++]);
  return [tf.reshape(x, dims)];
}

function squeeze(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const axes = axesOf(inputs, 1, ctx, 13);
  return [tf.squeeze(x, axes?.map((a) => normalizeAxis(a, x.rank)))];
}

function flatten(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const axis = normalizeAxis(attrInt(ctx.node, 'axis', 1), x.rank);
  const rows = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  return [tf.reshape(x, [rows, x.size / Math.max(rows, 1)])];
}

function expand(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const target = intsOf(required(inputs, 1, ctx));
  const shape = tf.backend_util.assertAndGetBroadcastShape(x.shape, target);
  const lifted = x.rank < shape.length ? tf.reshape(x, [...new Array<number>(shape.length - x.rank).fill(1), ...x.shape]) : x;
  return [tf.broadcastTo(lifted, shape)];
}

function tile(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  return [tf.tile(required(inputs, 0, ctx), intsOf(required(inputs, 1, ctx)))];
}

function constant(_inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const value = attrTensor(ctx.node, 'value');
  if (value) return [hostToTf(value)];
  const attrs = ctx.node.attributes;
  if (attrs.has('value_float')) return [tf.scalar(attrFloat(ctx.node, 'value_float', 0), 'float32')];
  if (attrs.has('value_int')) return [tf.scalar(attrInt(ctx.node, 'value_int', 0), 'int32')];
  if (attrs.has('value_floats')) return [tf.tensor1d(attrInts(ctx.node, 'value_floats') ?? [], 'float32')];
  if (attrs.has('value_ints')) return [tf.tensor1d(attrInts(ctx.node, 'value_ints') ?? [], 'int32')];
  return unsupported(ctx, 'a Constant without a numeric value');
}

function constantOfShape(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const dims = intsOf(required(inputs, 0, ctx));
  const value = attrTensor(ctx.node, 'value');
  return [tf.fill(dims, value ? value.data[0] : 0, value?.dtype ?? 'float32')];
}

function cast(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const to = hostDType(attrInt(ctx.node, 'to', onnx.TensorProto.DataType.FLOAT));
  if (to === x.dtype) return [x];
  // tfjs float->int32 cast truncates toward zero, as ONNX does.
  return [tf.cast(to === 'bool' ? tf.notEqual(x, 0) : x, to)];
}

function split(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const axis = normalizeAxis(attrInt(ctx.node, 'axis', 0), x.rank);
  const given = ctx.opset >= 13 ? (inputs[1] ? intsOf(inputs[1]) : undefined) : attrInts(ctx.node, 'split');
  const dim = x.shape[axis];
  const count = attrInt(ctx.node, 'num_outputs', ctx.node.outputs.length);
  const chunk = Math.ceil(dim / count);
  const sizes = given ?? Array.from({ length: count }, (_, i) => Math.max(0, Math.min(chunk, dim - chunk * i)));
  // As a 3-D split: the wasm backend slices high-rank tensors slowly.
  const outer = x.shape.slice(0, axis);
  const inner = x.shape.slice(axis + 1);
  const parts = tf.split(tf.reshape(x, [outer.reduce((a, b) => a * b, 1), dim, inner.reduce((a, b) => a * b, 1)]), sizes, 1);
  return parts.map((part, i) => tf.reshape(part, [...outer, sizes[i], ...inner]));
}

function range(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const [start, limit, delta] = [0, 1, 2].map((i) => required(inputs, i, ctx));
  const s = start.dataSync()[0];
  const d = delta.dataSync()[0];
  const count = Math.max(Math.ceil((limit.dataSync()[0] - s) / d), 0);
  return [tf.tensor1d(Array.from({ length: count }, (_, i) => s + i * d), start.dtype === 'int32' ? 'int32' : 'float32')];
}

function identity(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  return [required(inputs, 0, ctx)];
}

/** Inference-mode Dropout: identity, with an all-true mask when the mask output is requested. */
function dropout(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const training = ctx.opset >= 12 && inputs[2] ? inputs[2].dataSync()[0] !== 0 : attrInt(ctx.node, 'is_test', 1) === 0 && ctx.opset < 7;
  if (training) unsupported(ctx, 'training-mode dropout');
  return ctx.node.outputs.length > 1 ? [x, tf.onesLike(x).cast('bool')] : [x];
}

function pad(inputs: Inputs, ctx: OpContext): tf.Tensor[] {
  const x = required(inputs, 0, ctx);
  const mode = attrString(ctx.node, 'mode', 'constant');
  if (mode !== 'constant' && mode !== 'reflect') unsupported(ctx, `mode ${mode}`);
  const pads = ctx.opset >= 11 ? intsOf(required(inputs, 1, ctx)) : attrInts(ctx.node, 'pads') ?? [];
  const value = ctx.opset >= 11 ? (inputs[2] ? inputs[2].dataSync()[0] : 0) : attrFloat(ctx.node, 'value', 0);
  const axes = ctx.opset >= 18 && inputs[3] ? intsOf(inputs[3]).map((a) => normalizeAxis(a, x.rank)) : x.shape.map((_, i) => i);
  const paddings: [number, number][] = x.shape.map(() => [0, 0]);
  axes.forEach((axis, i) => { paddings[axis] = [pads[i], pads[i + axes.length]]; });
  return [mode === 'reflect' ? tf.mirrorPad(x, paddings, 'reflect') : tf.pad(x, paddings, value)];
}

export const shapeKernels: KernelTable = {
  Reshape: reshape,
  Transpose: transposeKernel,
  Concat: concat,
  Gather: gather,
  Slice: slice,
  Shape: shape,
  Size: (inputs, ctx) => [tf.scalar(required(inputs, 0, ctx).size, 'int32')],
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Flatten: flatten,
  Expand: expand,
  Tile: tile,
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Cast: cast,
  Split: split,
  Range: range,
  Identity: identity,
  Dropout: dropout,
  Pad: pad,
};
