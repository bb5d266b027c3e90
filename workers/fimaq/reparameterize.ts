/**
 * Reparameterization of post-LayerNorm activations (docs/fimaq.md): the inputs of qkv and fc1 vary
 * strongly between channels, so each channel gets its own range first; the per-channel ranges are
 * then folded into the LayerNorm's affine parameters and the next Linear's weight and bias, so that
 * one per-tensor scale quantizes the new input as well as per-channel scales did the old one, and
 * the full-precision function stays the same.
 */
import * as tf from '@tensorflow/tfjs';
import { attrInt } from '../engine/ops/kernel';
import { OnnxProgram } from '../engine/program';
import { minMaxParameters } from '../engine/quantizer';
import { QuantSite } from '../engine/sites';

/** A Linear reading a LayerNorm's output, with what the fold rewrites. */
export interface FoldedLinear {
  site: QuantSite;
  weight: string;
  /** Axis of the weight that indexes input channels. */
  inputAxis: number;
  bias: string;
}

export interface LayerNormFold {
  /** The LayerNorm's output: the activation that becomes per-tensor friendly. */
  output: string;
  gamma: string;
  beta: string;
  linears: FoldedLinear[];
}

/** Per-channel factors of the fold: x' = x / r − b. */
export interface FoldFactors {
  r: tf.Tensor;
  b: tf.Tensor;
}

function consumers(program: OnnxProgram, tensor: string): number[] {
  return program.nodes.map((n, i) => (n.inputs.includes(tensor) ? i : -1)).filter((i) => i >= 0);
}

function isVectorConstant(program: OnnxProgram, tensor: string): boolean {
  return program.constantValue(tensor)?.rank === 1 && program.graph.initializers.has(tensor);
}

/** γ and β of the LayerNorm producing `tensor`: the LayerNormalization op, or its decomposition ending in Mul(γ) → Add(β). */
function layerNormAffine(program: OnnxProgram, tensor: string): { gamma: string; beta: string } | undefined {
  const index = program.producerOf(tensor);
  if (index === undefined) return undefined;
  const node = program.nodes[index];
  if (node.opType === 'LayerNormalization') {
    const [, gamma, beta] = node.inputs;
    return gamma && beta && isVectorConstant(program, gamma) && isVectorConstant(program, beta) ? { gamma, beta } : undefined;
  }
  if (node.opType !== 'Add') return undefined;
  const beta = node.inputs.find((i) => isVectorConstant(program, i));
  const scaled = node.inputs.find((i) => i !== beta);
  const mulIndex = scaled === undefined ? undefined : program.producerOf(scaled);
  if (!beta || mulIndex === undefined || program.nodes[mulIndex].opType !== 'Mul') return undefined;
  const mul = program.nodes[mulIndex];
  const gamma = mul.inputs.find((i) => isVectorConstant(program, i));
  const normalized = mul.inputs.find((i) => i !== gamma);
  const divIndex = normalized === undefined ? undefined : program.producerOf(normalized);
  // The normalization itself: (x - mean) / sqrt(var + eps).
  if (!gamma || divIndex === undefined || program.nodes[divIndex].opType !== 'Div') return undefined;
  return { gamma, beta };
}

function foldedLinear(program: OnnxProgram, site: QuantSite): FoldedLinear | undefined {
  const node = program.nodes[site.nodeIndex];
  const weight = node.inputs[1];
  if (site.kind !== 'linear' || consumers(program, weight).length !== 1) return undefined;
  if (node.opType === 'Gemm') {
    const bias = node.inputs[2];
    if (!bias || !isVectorConstant(program, bias) || attrInt(node, 'transA', 0) !== 0) return undefined;
    return { site, weight, inputAxis: attrInt(node, 'transB', 0) === 1 ? 1 : 0, bias };
  }
  if (program.constantValue(weight)?.rank !== 2) return undefined;
  const readers = consumers(program, node.outputs[0]);
  const add = readers.length === 1 ? program.nodes[readers[0]] : undefined;
  const bias = add?.opType === 'Add' ? add.inputs.find((i) => isVectorConstant(program, i)) : undefined;
  return bias && consumers(program, bias).length === 1 ? { site, weight, inputAxis: 0, bias } : undefined;
}

/** LayerNorms whose output feeds only Linear sites with a bias, with their own γ and β. */
export function findLayerNormFolds(program: OnnxProgram, sites: readonly QuantSite[]): LayerNormFold[] {
  const folds = new Map<string, LayerNormFold>();
  for (const site of sites) {
    const activation = site.operands.find((o) => o.role === 'activation');
    if (site.kind !== 'linear' || !activation || activation.granularity !== 'per-tensor' || folds.has(activation.tensor)) continue;
    const affine = layerNormAffine(program, activation.tensor);
    if (!affine || consumers(program, affine.gamma).length !== 1 || consumers(program, affine.beta).length !== 1) continue;
    // Shape nodes read only the shape, which the fold keeps.
    const readers = consumers(program, activation.tensor).filter((i) => program.nodes[i].opType !== 'Shape');
    const linears = readers.map((i) => sites.find((s) => s.nodeIndex === i)).map((s) => (s ? foldedLinear(program, s) : undefined));
    if (linears.some((l) => l === undefined)) continue;
    folds.set(activation.tensor, { output: activation.tensor, ...affine, linears: linears as FoldedLinear[] });
  }
  return [...folds.values()];
}

/**
 * Factors from the channels' min/max ranges (`min`, `max`: [C]): per-channel (s_c, z_c), then the
 * per-tensor target s̄ = mean s_c, z̄ = round(mean z_c); r_c = s_c / s̄, b_c = min_c / r_c − min̄.
 */
export function foldFactors(min: tf.Tensor, max: tf.Tensor, bits: number): FoldFactors {
  return tf.tidy(() => {
    const { scale, zeroPoint } = minMaxParameters(min, max, bits);
    const targetScale = tf.mean(scale);
    const targetZero = tf.round(tf.mean(zeroPoint));
    const r = tf.div(scale, targetScale);
    const channelMin = tf.neg(tf.mul(zeroPoint, scale));
    const targetMin = tf.neg(tf.mul(targetZero, targetScale));
    return { r: tf.keep(r), b: tf.keep(tf.sub(tf.div(channelMin, r), targetMin)) };
  });
}

/** Rewrites γ, β, the Linears' weights and biases: γ/r, β/r − b, W·r along input channels, bias + b·W'. */
export function applyFold(program: OnnxProgram, fold: LayerNormFold, { r, b }: FoldFactors): void {
  tf.tidy(() => {
    const constant = (name: string): tf.Tensor => program.constantValue(name) as tf.Tensor;
    program.setConstant(fold.gamma, tf.div(constant(fold.gamma), r));
    program.setConstant(fold.beta, tf.sub(tf.div(constant(fold.beta), r), b));
    for (const linear of fold.linears) {
      const channels = linear.inputAxis === 0 ? [-1, 1] : [1, -1];
      const weight = tf.mul(constant(linear.weight), tf.reshape(r, channels));
      const shift = linear.inputAxis === 0 ? tf.matMul(tf.reshape(b, [1, -1]), weight) : tf.matMul(weight, tf.reshape(b, [-1, 1]));
      program.setConstant(linear.weight, weight);
      program.setConstant(linear.bias, tf.add(constant(linear.bias), tf.reshape(shift, [-1])));
    }
  });
}

/** Per-channel min/max over the captured LayerNorm output ([..., C]). */
export function channelRange(value: tf.Tensor): { min: tf.Tensor; max: tf.Tensor } {
  return tf.tidy(() => {
    const rows = tf.reshape(value, [-1, value.shape[value.rank - 1]]);
    return { min: tf.min(rows, 0), max: tf.max(rows, 0) };
  });
}
