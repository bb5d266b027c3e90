/**
 * Reverse-mode rules for the ONNX ops of transformer blocks: each rule writes, as new ONNX nodes,
 * the gradients of a node's inputs from the gradients of its outputs. Shapes are static (the
 * training graph has a fixed batch), so broadcasting is undone with known axes. The conventions
 * match tfjs's gradients, which the simulated (tfjs) path uses: Clip and Max pass the gradient
 * at their bounds, Abs uses the sign.
 */
import { GraphNode } from '../onnx/graph';
import { ModelBuilder, Shape } from '../onnx/model-builder';
import { HostTensor } from '../onnx/tensor';

export interface RuleContext {
  node: GraphNode;
  /** Gradient of each output; undefined where no gradient reaches it. */
  dy: (string | undefined)[];
  /** Inputs whose gradient is needed. */
  wanted: boolean[];
  b: ModelBuilder;
  /** Extra outputs the node was emitted with (LayerNormalization's mean and inverse std). */
  saved: string[];
  /** Values of constant inputs (indices, axes, exponents). */
  constantOf(name: string): HostTensor | undefined;
}

/**
 * The gradient of one slice of a tensor (`index` along `axis`, `slice` keeping that axis with size
 * 1), zero elsewhere. Slices of one tensor that together cover the axis join into one Concat
 * instead of a zero-padded full tensor each (the q, k, v split of attention).
 */
export interface SliceGradient {
  slice: string;
  axis: number;
  index: number;
  shape: Shape;
}

export type Gradient = string | SliceGradient | undefined;

export type GradientRule = (ctx: RuleContext) => Gradient[];

/** A node the rules cannot differentiate (an op without a rule, or a case its rule does not cover). */
export class NoGradientRule extends Error {}

/** Extra outputs a node is emitted with so that its rule can use them. */
export const SAVED_OUTPUTS: Readonly<Record<string, number>> = { LayerNormalization: 2 };

function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

function attrInt(node: GraphNode, name: string, fallback: number): number {
  const v = node.attributes.get(name);
  return typeof v === 'number' ? v : fallback;
}

function attrInts(node: GraphNode, name: string): number[] | undefined {
  const v = node.attributes.get(name);
  return Array.isArray(v) ? (v as number[]) : undefined;
}

/** Sums a gradient of shape `from` over the axes that broadcasting expanded, back to `to`. */
export function unbroadcast(b: ModelBuilder, grad: string, from: Shape, to: Shape): string {
  const offset = from.length - to.length;
  const axes: number[] = [];
  for (let i = 0; i < from.length; i++) {
    if (i < offset || (to[i - offset] === 1 && from[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return from.length === to.length ? grad : b.op('Reshape', [grad, b.int64s('shape', to)], to);
  const keptShape = from.map((d, i) => (axes.includes(i) ? 1 : d));
  const summed = b.op('ReduceSum', [grad, b.int64s('axes', axes)], keptShape, { keepdims: 1 });
  return b.op('Reshape', [summed, b.int64s('shape', to)], to);
}

function only(ctx: RuleContext): string {
  const [dy] = ctx.dy;
  if (!dy) throw new Error(`${ctx.node.opType} '${ctx.node.name}': no gradient reaches its output`);
  return dy;
}

const shapeOf = (ctx: RuleContext, index: number): Shape => ctx.b.shapeOf(ctx.node.inputs[index]);
const outShape = (ctx: RuleContext): Shape => ctx.b.shapeOf(ctx.node.outputs[0]);
const y0 = (ctx: RuleContext): string => ctx.node.outputs[0];
const in0 = (ctx: RuleContext): string => ctx.node.inputs[0];

/** Rules for ops whose input gradients are the output gradient times something, per input. */
function elementwise(...factors: ((ctx: RuleContext, dy: string) => string | undefined)[]): GradientRule {
  return (ctx) => {
    const dy = only(ctx);
    return factors.map((f, i) => (ctx.wanted[i] ? unbroadcast(ctx.b, f(ctx, dy) as string, outShape(ctx), shapeOf(ctx, i)) : undefined));
  };
}

function reshapeBack(ctx: RuleContext): (string | undefined)[] {
  const shape = shapeOf(ctx, 0);
  return [ctx.b.op('Reshape', [only(ctx), ctx.b.int64s('shape', shape)], shape)];
}

function inversePermutation(perm: number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => { inverse[p] = i; });
  return inverse;
}

function swapLast(b: ModelBuilder, x: string): string {
  const shape = b.shapeOf(x);
  const perm = shape.map((_, i) => i);
  [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
  return b.op('Transpose', [x], perm.map((p) => shape[p]), { perm });
}

function matMul(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const dy = only(ctx);
  const [a, w] = node.inputs;
  const [aShape, wShape, yShape] = [b.shapeOf(a), b.shapeOf(w), outShape(ctx)];
  if (aShape.length < 2 || wShape.length < 2) throw new NoGradientRule(`MatMul '${node.name}': vector operands have no gradient rule`);
  let da: string | undefined;
  let dw: string | undefined;
  if (ctx.wanted[0]) {
    const full = b.op('MatMul', [dy, swapLast(b, w)], [...yShape.slice(0, -1), aShape[aShape.length - 1]]);
    da = unbroadcast(b, full, b.shapeOf(full), aShape);
  }
  if (ctx.wanted[1]) {
    const [k, n] = [aShape[aShape.length - 1], yShape[yShape.length - 1]];
    if (wShape.length === 2) {
      // One large product over every row instead of a batched product summed afterwards.
      const rows = aShape.slice(0, -1).reduce((x, y) => x * y, 1);
      const a2 = b.op('Reshape', [a, b.int64s('shape', [rows, k])], [rows, k]);
      const dy2 = b.op('Reshape', [dy, b.int64s('shape', [rows, n])], [rows, n]);
      dw = b.op('MatMul', [swapLast(b, a2), dy2], [k, n]);
    } else {
      const full = b.op('MatMul', [swapLast(b, a), dy], [...yShape.slice(0, -2), k, n]);
      dw = unbroadcast(b, full, b.shapeOf(full), wShape);
    }
  }
  return [da, dw];
}

/** Y = α·A′·B′ + β·C with A′, B′ optionally transposed (2-D operands). */
function gemm(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const dy = only(ctx);
  const [a, w, c] = node.inputs;
  const [transA, transB] = [attrInt(node, 'transA', 0) === 1, attrInt(node, 'transB', 0) === 1];
  const alpha = node.attributes.get('alpha') as number | undefined ?? 1;
  const beta = node.attributes.get('beta') as number | undefined ?? 1;
  const scaled = (t: string, factor: number, shape: Shape): string => (factor === 1 ? t : b.op('Mul', [t, b.scalar(factor)], shape));
  const t = (x: string): string => swapLast(b, x);
  const yShape = outShape(ctx);
  // dA′ = dY·B′ᵀ, dB′ = A′ᵀ·dY; a transposed operand takes the transposed product (dA = dA′ᵀ = B′·dYᵀ).
  const primeA = transA ? t(a) : a;
  const primeB = transB ? t(w) : w;
  const da = ctx.wanted[0]
    ? scaled(transA ? b.op('MatMul', [primeB, t(dy)], b.shapeOf(a)) : b.op('MatMul', [dy, t(primeB)], b.shapeOf(a)), alpha, b.shapeOf(a))
    : undefined;
  const dw = ctx.wanted[1]
    ? scaled(transB ? b.op('MatMul', [t(dy), primeA], b.shapeOf(w)) : b.op('MatMul', [t(primeA), dy], b.shapeOf(w)), alpha, b.shapeOf(w))
    : undefined;
  const dc = c && ctx.wanted[2] ? unbroadcast(b, scaled(dy, beta, yShape), yShape, b.shapeOf(c)) : undefined;
  return [da, dw, dc];
}

/**
 * Conv as a patch embedding only (kernel = stride, no padding, dilation 1, one group): then it is
 * a product of non-overlapping patches with the flattened kernel, and so are its gradients.
 */
function patchConv(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const [x, w, bias] = node.inputs;
  const [n, c, h, width] = b.shapeOf(x);
  const [o, , kh, kw] = b.shapeOf(w);
  const strides = attrInts(node, 'strides') ?? [1, 1];
  const pads = attrInts(node, 'pads') ?? [0, 0, 0, 0];
  const dilations = attrInts(node, 'dilations') ?? [1, 1];
  const autoPad = node.attributes.get('auto_pad') ?? 'NOTSET';
  const patchwise = b.shapeOf(x).length === 4 && strides[0] === kh && strides[1] === kw && pads.every((p) => p === 0)
    && dilations.every((d) => d === 1) && attrInt(node, 'group', 1) === 1 && h % kh === 0 && width % kw === 0 && (autoPad === 'NOTSET' || autoPad === 'VALID');
  if (!patchwise) throw new NoGradientRule(`Conv '${node.name}': only a patch embedding (kernel = stride, no padding) has a gradient rule`);
  const [ph, pw] = [h / kh, width / kw];
  const [patches, patchSize] = [n * ph * pw, c * kh * kw];
  const dy = only(ctx);
  const rowsOfDy = b.op('Reshape', [b.op('Transpose', [dy], [n, ph, pw, o], { perm: [0, 2, 3, 1] }), b.int64s('shape', [patches, o])], [patches, o]);
  const grads: (string | undefined)[] = [undefined, undefined, undefined];
  if (ctx.wanted[0]) {
    const kernelRows = b.op('Reshape', [w, b.int64s('shape', [o, patchSize])], [o, patchSize]);
    const patchGrads = b.op('MatMul', [rowsOfDy, kernelRows], [patches, patchSize]);
    const split = b.op('Reshape', [patchGrads, b.int64s('shape', [n, ph, pw, c, kh, kw])], [n, ph, pw, c, kh, kw]);
    const image = b.op('Transpose', [split], [n, c, ph, kh, pw, kw], { perm: [0, 3, 1, 4, 2, 5] });
    grads[0] = b.op('Reshape', [image, b.int64s('shape', [n, c, h, width])], [n, c, h, width]);
  }
  if (ctx.wanted[1]) {
    const split = b.op('Reshape', [x, b.int64s('shape', [n, c, ph, kh, pw, kw])], [n, c, ph, kh, pw, kw]);
    const patchRows = b.op('Reshape', [b.op('Transpose', [split], [n, ph, pw, c, kh, kw], { perm: [0, 2, 4, 1, 3, 5] }), b.int64s('shape', [patches, patchSize])], [patches, patchSize]);
    const flat = b.op('MatMul', [b.op('Transpose', [rowsOfDy], [o, patches], { perm: [1, 0] }), patchRows], [o, patchSize]);
    grads[1] = b.op('Reshape', [flat, b.int64s('shape', [o, c, kh, kw])], [o, c, kh, kw]);
  }
  if (bias && ctx.wanted[2]) grads[2] = b.op('ReduceSum', [dy, b.int64s('axes', [0, 2, 3])], [o], { keepdims: 0 });
  return grads;
}

function layerNormalization(ctx: RuleContext): (string | undefined)[] {
  const { b, node, saved } = ctx;
  const dy = only(ctx);
  const [x, gamma] = node.inputs;
  const shape = b.shapeOf(x);
  const axis = normalizeAxis(attrInt(node, 'axis', -1), shape.length);
  const axes = shape.slice(axis).map((_, i) => axis + i);
  const kept = shape.map((d, i) => (i >= axis ? 1 : d));
  const [mean, invStd] = saved;
  const normalized = b.op('Mul', [b.op('Sub', [x, mean], shape), invStd], shape);
  const count = axes.reduce((n, a) => n * shape[a], 1);
  // ReduceSum takes its axes as an input in every opset from 13, ReduceMean only from 18.
  const meanOver = (t: string): string => b.op('Mul', [b.op('ReduceSum', [t, b.int64s('axes', axes)], kept, { keepdims: 1 }), b.scalar(1 / count)], kept);
  const grads: (string | undefined)[] = [undefined, undefined, undefined];
  if (ctx.wanted[0]) {
    const g = b.op('Mul', [dy, gamma], shape);
    const centered = b.op('Sub', [g, meanOver(g)], shape);
    const projected = b.op('Mul', [normalized, meanOver(b.op('Mul', [g, normalized], shape))], shape);
    grads[0] = b.op('Mul', [b.op('Sub', [centered, projected], shape), invStd], shape);
  }
  if (ctx.wanted[1]) grads[1] = unbroadcast(b, b.op('Mul', [dy, normalized], shape), shape, b.shapeOf(gamma));
  if (ctx.wanted[2]) grads[2] = unbroadcast(b, dy, shape, b.shapeOf(node.inputs[2]));
  return grads;
}

function softmax(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const y = node.outputs[0];
  const shape = outShape(ctx);
  const axis = normalizeAxis(attrInt(node, 'axis', -1), shape.length);
  const weighted = b.op('Mul', [only(ctx), y], shape);
  const summed = b.op('ReduceSum', [weighted, b.int64s('axes', [axis])], shape.map((d, i) => (i === axis ? 1 : d)), { keepdims: 1 });
  return [b.op('Mul', [b.op('Sub', [only(ctx), summed], shape), y], shape)];
}

function logSoftmax(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const shape = outShape(ctx);
  const axis = normalizeAxis(attrInt(node, 'axis', -1), shape.length);
  const summed = b.op('ReduceSum', [only(ctx), b.int64s('axes', [axis])], shape.map((d, i) => (i === axis ? 1 : d)), { keepdims: 1 });
  return [b.op('Sub', [only(ctx), b.op('Mul', [b.op('Exp', [node.outputs[0]], shape), summed], shape)], shape)];
}

function gather(ctx: RuleContext): Gradient[] {
  const { b, node } = ctx;
  const shape = shapeOf(ctx, 0);
  const indices = ctx.constantOf(node.inputs[1]);
  if (!indices || indices.shape.length !== 0) throw new NoGradientRule(`Gather '${node.name}': only a constant scalar index has a gradient rule`);
  const axis = normalizeAxis(attrInt(node, 'axis', 0), shape.length);
  const index = normalizeAxis(indices.data[0], shape[axis]);
  const slice = b.op('Unsqueeze', [only(ctx), b.int64s('axes', [axis])], shape.map((d, i) => (i === axis ? 1 : d)));
  return [{ slice, axis, index, shape }];
}

/** The whole-tensor gradient of slice gradients: one Concat when they cover their axis once, else zero-padded and summed. */
export function joinSlices(b: ModelBuilder, slices: readonly SliceGradient[]): string {
  const [{ axis, shape }] = slices;
  const indices = slices.map((s) => s.index).sort((x, y) => x - y);
  const covering = slices.every((s) => s.axis === axis) && indices.length === shape[axis] && indices.every((v, i) => v === i);
  if (covering) return slices.length === 1 ? slices[0].slice : b.op('Concat', [...slices].sort((x, y) => x.index - y.index).map((s) => s.slice), shape, { axis });
  return slices.map((s) => {
    const pads = s.shape.map(() => 0).concat(s.shape.map(() => 0));
    pads[s.axis] = s.index;
    pads[s.shape.length + s.axis] = s.shape[s.axis] - 1 - s.index;
    return b.op('Pad', [s.slice, b.int64s('pads', pads)], s.shape);
  }).reduce((sum, t) => b.op('Add', [sum, t], shape));
}

function concat(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const shapes = node.inputs.map((i) => b.shapeOf(i));
  const axis = normalizeAxis(attrInt(node, 'axis', 0), shapes[0].length);
  let start = 0;
  return shapes.map((shape, i) => {
    const from = start;
    start += shape[axis];
    if (!ctx.wanted[i]) return undefined;
    return b.op('Slice', [only(ctx), b.int64s('starts', [from]), b.int64s('ends', [from + shape[axis]]), b.int64s('axes', [axis])], shape);
  });
}

function split(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const shape = shapeOf(ctx, 0);
  const axis = normalizeAxis(attrInt(node, 'axis', 0), shape.length);
  const parts = node.outputs.map((o, k) => {
    const partShape = b.shapeOf(o);
    return ctx.dy[k] ?? b.op('Expand', [b.scalar(0), b.int64s('shape', partShape)], partShape);
  });
  return [b.op('Concat', parts, shape, { axis })];
}

/** Sum, mean and L2 norm over axes: the output gradient spread back over the reduced axes. */
function reduction(kind: 'sum' | 'mean' | 'l2'): GradientRule {
  return (ctx) => {
    const { b, node } = ctx;
    const shape = shapeOf(ctx, 0);
    const fromInput = node.inputs[1] ? ctx.constantOf(node.inputs[1]) : undefined;
    const listed = fromInput ? Array.from(fromInput.data) : attrInts(node, 'axes');
    const axes = (listed && listed.length > 0 ? listed : shape.map((_, i) => i)).map((a) => normalizeAxis(a, shape.length));
    const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const keptShape = b.int64s('shape', kept);
    let dy = b.op('Reshape', [only(ctx), keptShape], kept);
    if (kind === 'mean') dy = b.op('Mul', [dy, b.scalar(1 / axes.reduce((n, a) => n * shape[a], 1))], kept);
    // ∂‖x‖/∂x = x / ‖x‖
    if (kind === 'l2') return [b.op('Mul', [in0(ctx), b.op('Div', [dy, b.op('Reshape', [y0(ctx), keptShape], kept)], kept)], shape)];
    return [b.op('Expand', [dy, b.int64s('shape', shape)], shape)];
  };
}

function clip(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const [x, min, max] = node.inputs;
  const shape = shapeOf(ctx, 0);
  const bounds = [min ? b.op('GreaterOrEqual', [x, min], undefined) : undefined, max ? b.op('LessOrEqual', [x, max], undefined) : undefined]
    .filter((t): t is string => t !== undefined);
  if (bounds.length === 0) return [only(ctx)];
  const inside = bounds.length === 1 ? bounds[0] : b.op('And', bounds, undefined);
  return [b.op('Where', [inside, only(ctx), b.scalar(0)], shape)];
}

function where(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  const [condition] = node.inputs;
  const shape = outShape(ctx);
  const zero = b.scalar(0);
  const dy = only(ctx);
  const side = (index: number, chosen: string[]): string | undefined => (ctx.wanted[index]
    ? unbroadcast(b, b.op('Where', [condition, ...chosen], shape), shape, shapeOf(ctx, index))
    : undefined);
  return [undefined, side(1, [dy, zero]), side(2, [zero, dy])];
}

function maximum(ctx: RuleContext): (string | undefined)[] {
  const { b, node } = ctx;
  if (node.inputs.length !== 2) throw new NoGradientRule(`Max '${node.name}': only two inputs have a gradient rule`);
  const shape = outShape(ctx);
  const firstWins = b.op('GreaterOrEqual', [node.inputs[0], node.inputs[1]], undefined);
  const zero = b.scalar(0);
  const dy = only(ctx);
  return [
    ctx.wanted[0] ? unbroadcast(b, b.op('Where', [firstWins, dy, zero], shape), shape, shapeOf(ctx, 0)) : undefined,
    ctx.wanted[1] ? unbroadcast(b, b.op('Where', [firstWins, zero, dy], shape), shape, shapeOf(ctx, 1)) : undefined,
  ];
}


export const GRADIENT_RULES: Readonly<Record<string, GradientRule>> = {
  Identity: (ctx) => [only(ctx)],
  Dropout: (ctx) => [only(ctx)],
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Expand: (ctx) => [unbroadcast(ctx.b, only(ctx), outShape(ctx), shapeOf(ctx, 0))],
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: (ctx) => {
    const shape = shapeOf(ctx, 0);
    const perm = attrInts(ctx.node, 'perm') ?? shape.map((_, i) => shape.length - 1 - i);
    return [ctx.b.op('Transpose', [only(ctx)], shape, { perm: inversePermutation(perm) })];
  },
  Add: elementwise((_, dy) => dy, (_, dy) => dy),
  Sub: elementwise((_, dy) => dy, (ctx, dy) => ctx.b.op('Neg', [dy], outShape(ctx))),
  Mul: elementwise(
    (ctx, dy) => ctx.b.op('Mul', [dy, ctx.node.inputs[1]], outShape(ctx)),
    (ctx, dy) => ctx.b.op('Mul', [dy, ctx.node.inputs[0]], outShape(ctx)),
  ),
  Div: elementwise(
    (ctx, dy) => ctx.b.op('Div', [dy, ctx.node.inputs[1]], outShape(ctx)),
    (ctx, dy) => ctx.b.op('Neg', [ctx.b.op('Mul', [dy, ctx.b.op('Div', [y0(ctx), ctx.node.inputs[1]], outShape(ctx))], outShape(ctx))], outShape(ctx)),
  ),
  Neg: (ctx) => [ctx.b.op('Neg', [only(ctx)], outShape(ctx))],
  Abs: (ctx) => [ctx.b.op('Mul', [only(ctx), ctx.b.op('Sign', [in0(ctx)], outShape(ctx))], outShape(ctx))],
  Sqrt: (ctx) => [ctx.b.op('Div', [only(ctx), ctx.b.op('Mul', [y0(ctx), ctx.b.scalar(2)], outShape(ctx))], outShape(ctx))],
  Exp: (ctx) => [ctx.b.op('Mul', [only(ctx), y0(ctx)], outShape(ctx))],
  Sigmoid: (ctx) => {
    const { b } = ctx;
    const shape = outShape(ctx);
    const slope = b.op('Mul', [y0(ctx), b.op('Sub', [b.scalar(1), y0(ctx)], shape)], shape);
    return [b.op('Mul', [only(ctx), slope], shape)];
  },
  Tanh: (ctx) => {
    const { b } = ctx;
    const shape = outShape(ctx);
    const slope = b.op('Sub', [b.scalar(1), b.op('Mul', [y0(ctx), y0(ctx)], shape)], shape);
    return [b.op('Mul', [only(ctx), slope], shape)];
  },
  Relu: (ctx) => [ctx.b.op('Where', [ctx.b.op('Greater', [in0(ctx), ctx.b.scalar(0)], undefined), only(ctx), ctx.b.scalar(0)], outShape(ctx))],
  Erf: (ctx) => {
    const { b } = ctx;
    const shape = outShape(ctx);
    const x = in0(ctx);
    const gaussian = b.op('Exp', [b.op('Neg', [b.op('Mul', [x, x], shape)], shape)], shape);
    return [b.op('Mul', [only(ctx), b.op('Mul', [gaussian, b.scalar(2 / Math.sqrt(Math.PI))], shape)], shape)];
  },
  Pow: (ctx) => {
    const { b, node } = ctx;
    if (ctx.wanted[1]) throw new NoGradientRule(`Pow '${node.name}': a learned exponent has no gradient rule`);
    const shape = outShape(ctx);
    const [x, e] = node.inputs;
    const lowered = b.op('Pow', [x, b.op('Sub', [e, b.scalar(1)], b.shapeOf(e))], shape);
    return [unbroadcast(b, b.op('Mul', [only(ctx), b.op('Mul', [lowered, e], shape)], shape), shape, b.shapeOf(x))];
  },
  Max: maximum,
  Clip: clip,
  Where: where,
  MatMul: matMul,
  Gemm: gemm,
  Conv: patchConv,
  LayerNormalization: layerNormalization,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  Gather: gather,
  Concat: concat,
  Split: split,
  ReduceMean: reduction('mean'),
  ReduceSum: reduction('sum'),
  ReduceL2: reduction('l2'),
};
