/**
 * A ViT of any size as ONNX, with seeded random weights, laid out as the PyTorch exports of the
 * reference models are (patch Conv, pre-norm blocks with a fused qkv Linear split by Gather, GELU
 * by Erf, Gemm head): for measuring how costs scale with tokens and width.
 */
import { onnx } from '../../workers/engine/onnx/proto';
import { buildModel, NodeSpec, values } from '../engine/onnx-builder';

export interface VitShape {
  imageSize: number;
  patch: number;
  dim: number;
  heads: number;
  mlp: number;
  depth: number;
  classes: number;
}

export function syntheticVit(shape: VitShape, seed = 1): Uint8Array {
  const { imageSize, patch, dim, heads, mlp, depth, classes } = shape;
  const patches = (imageSize / patch) ** 2;
  const tokens = patches + 1;
  const headDim = dim / heads;
  const nodes: NodeSpec[] = [];
  const initializers: { name: string; shape: number[]; values: number[]; type?: number }[] = [];
  let counter = 0;
  const fresh = (hint: string): string => `${hint}_${counter++}`;
  const node = (op: string, inputs: string[], attributes: NodeSpec['attributes'] = {}): string => {
    const output = fresh(op.toLowerCase());
    nodes.push({ op, inputs, outputs: [output], attributes });
    return output;
  };
  const constant = (hint: string, dims: number[], data: number[], type?: number): string => {
    const name = fresh(hint);
    initializers.push({ name, shape: dims, values: data, type });
    return name;
  };
  const weight = (hint: string, dims: number[], fanIn: number): string => constant(hint, dims, values(dims.reduce((x, y) => x * y, 1), seed + counter).map((v) => v / Math.sqrt(fanIn)));
  const int64 = (hint: string, dims: number[], data: number[]): string => constant(hint, dims, data, onnx.TensorProto.DataType.INT64);
  const scalar = (v: number): string => constant('scalar', [], [v]);
  const linear = (x: string, inDim: number, outDim: number): string => node('Add', [node('MatMul', [x, weight('w', [inDim, outDim], inDim)]), weight('bias', [outDim], inDim)]);
  const layerNorm = (x: string): string => node('LayerNormalization', [x, constant('gamma', [dim], new Array(dim).fill(1)), constant('beta', [dim], new Array(dim).fill(0))], { axis: -1, epsilon: 1e-6 });

  const embedded = node('Conv', ['input', weight('patch_w', [dim, 1, patch, patch], patch * patch), weight('patch_b', [dim], patch * patch)], { kernel_shape: [patch, patch], strides: [patch, patch] });
  const sequence = node('Transpose', [node('Reshape', [embedded, int64('shape', [3], [0, dim, patches])])], { perm: [0, 2, 1] });
  // The class token enters as a zero row that the first row of the position embedding fills.
  let x = node('Add', [node('Pad', [sequence, int64('pads', [6], [0, 1, 0, 0, 0, 0])]), weight('pos_cls', [1, tokens, dim], 1)]);
  for (let i = 0; i < depth; i++) {
    const qkv = node('Transpose', [node('Reshape', [linear(layerNorm(x), dim, 3 * dim), int64('shape', [5], [0, tokens, 3, heads, headDim])])], { perm: [2, 0, 3, 1, 4] });
    const [q, k, v] = [0, 1, 2].map((j) => node('Gather', [qkv, int64('index', [], [j])], { axis: 0 }));
    const scores = node('Mul', [node('MatMul', [q, node('Transpose', [k], { perm: [0, 1, 3, 2] })]), scalar(1 / Math.sqrt(headDim))]);
    const attended = node('MatMul', [node('Softmax', [scores], { axis: -1 }), v]);
    const merged = node('Reshape', [node('Transpose', [attended], { perm: [0, 2, 1, 3] }), int64('shape', [3], [0, tokens, dim])]);
    x = node('Add', [x, linear(merged, dim, dim)]);
    const hidden = linear(layerNorm(x), dim, mlp);
    const gelu = node('Mul', [node('Mul', [hidden, node('Add', [node('Erf', [node('Div', [hidden, scalar(Math.SQRT2)])]), scalar(1)])]), scalar(0.5)]);
    x = node('Add', [x, linear(gelu, mlp, dim)]);
  }
  const cls = node('Gather', [layerNorm(x), int64('cls', [], [0])], { axis: 1 });
  nodes.push({ op: 'Gemm', inputs: [cls, weight('head_w', [classes, dim], dim), weight('head_b', [classes], dim)], outputs: ['logits'], attributes: { transB: 1 } });
  return buildModel({
    inputs: [{ name: 'input', shape: ['N', 1, imageSize, imageSize] }],
    outputs: [{ name: 'logits', shape: ['N', classes] }],
    nodes,
    initializers,
  });
}
