/**
 * Stage 1 scale search (docs/fimaq.md): per-channel weight scales and per-tensor / per-head activation
 * scales chosen by the MSE of the site's *output*, alternating weights and activations. Every
 * candidate is evaluated on the whole calibration capture in one batched product.
 */
import * as tf from '@tensorflow/tfjs';
import { attrFloat, attrInt } from '../engine/ops/kernel';
import { OnnxProgram } from '../engine/program';
import { fakeQuantize, minMaxParameters, UniformQuantizer } from '../engine/quantizer';
import { parameterShape } from '../engine/simulation';
import { OperandSpec, QuantSite } from '../engine/sites';
import { reducedAxes, siteProduct } from './site-io';

const ALPHA_MIN = 0.01;
const ALPHA_MAX = 1.2;
const PERCENTILE_LOW = 0.99;
const PERCENTILE_HIGH = 0.99999;
/** Values sorted per slice to read percentiles; beyond this a strided sample stands for the slice. */
const PERCENTILE_SAMPLE = 1 << 20;

export interface SearchState {
  program: OnnxProgram;
  site: QuantSite;
  /** Full-precision activation operands by input index (calibration capture). */
  inputs: ReadonlyMap<number, tf.Tensor>;
  /** The site's full-precision output on `inputs`. */
  target: tf.Tensor;
  /** Current quantizer of each operand by input index; the search replaces entries. */
  quantizers: Map<number, UniformQuantizer>;
  eqN: number;
  /** Images (leading rows of the capture) on which candidates are compared by running the product (all but Linear weights, which use a Gram matrix of every image). */
  searchImages: number;
}

/** Even grid of `n` multipliers in [0.01, 1.2]. */
export function alphaGrid(n: number): number[] {
  return n === 1 ? [1] : Array.from({ length: n }, (_, i) => ALPHA_MIN + ((ALPHA_MAX - ALPHA_MIN) * i) / (n - 1));
}

/** Percentile levels between the 99th and the 99.999th, then the extreme (min/max) itself. */
export function percentileLevels(n: number): number[] {
  const grid = n === 1 ? [PERCENTILE_HIGH] : Array.from({ length: n }, (_, i) => PERCENTILE_LOW + ((PERCENTILE_HIGH - PERCENTILE_LOW) * i) / (n - 1));
  return [...grid, 1];
}

/** Min/max quantizer of an operand value (weights: per channel; activations: at their granularity). */
export function minMaxQuantizer(operand: OperandSpec, value: tf.Tensor): UniformQuantizer {
  const axes = reducedAxes(operand, value.rank);
  const shape = parameterShape(operand);
  const { scale, zeroPoint } = tf.tidy(() => minMaxParameters(tf.reshape(tf.min(value, axes), shape), tf.reshape(tf.max(value, axes), shape), operand.bits));
  const quantizer = new UniformQuantizer(operand.bits, scale, zeroPoint);
  scale.dispose();
  zeroPoint.dispose();
  return quantizer;
}

function operandValue(state: SearchState, operand: OperandSpec): tf.Tensor {
  const value = operand.role === 'weight' ? state.program.constantValue(operand.tensor) : state.inputs.get(operand.inputIndex);
  if (!value) throw new Error(`site ${state.site.id}: no value for operand #${operand.inputIndex}`);
  return value;
}

/** Every operand but `searched`, quantized by its current quantizer (computed once per search). */
function otherOperandsQuantized(state: SearchState, searched: OperandSpec): Map<number, tf.Tensor> {
  const operands = new Map<number, tf.Tensor>();
  for (const operand of state.site.operands) {
    if (operand !== searched) operands.set(operand.inputIndex, (state.quantizers.get(operand.inputIndex) as UniformQuantizer).apply(operandValue(state, operand)));
  }
  return operands;
}

function withOperand(others: ReadonlyMap<number, tf.Tensor>, operand: OperandSpec, value: tf.Tensor): Map<number, tf.Tensor> {
  return new Map([...others, [operand.inputIndex, value]]);
}

/** Values one batched candidate evaluation may hold; bounds memory while keeping products large. */
const CHUNK_ELEMENTS = 1 << 23;

/**
 * Mean over every axis but `keep` (kept in order). The axes after the last kept one are merged and
 * reduced first, a contiguous inner reduction; only the small remainder is reduced over leading
 * axes. (wasm's Mean over scattered axes of a large rank-5/6 tensor transposes it whole first,
 * which took most of the activation search.)
 */
function meanKeeping(x: tf.Tensor, keep: readonly number[]): tf.Tensor {
  const last = Math.max(...keep);
  const inner = last < x.rank - 1 ? tf.mean(tf.reshape(x, [...x.shape.slice(0, last + 1), -1]), last + 1) : x;
  const outer = Array.from({ length: last + 1 }, (_, i) => i).filter((i) => !keep.includes(i));
  return outer.length > 0 ? tf.mean(inner, outer) : inner;
}

/** Output axis that carries an operand's own-scale slices. */
function outputAxis(site: QuantSite, operand: OperandSpec, outputRank: number): number | undefined {
  if (operand.axis === undefined) return undefined;
  if (operand.role === 'weight') return site.opType === 'Conv' ? 1 : outputRank - 1;
  return operand.axis; // batch, head and token axes keep their place through the product
}

/** Index of the smallest error per slice, from [candidates, slices] error rows. */
function bestPerSlice(errors: tf.Tensor[]): Int32Array {
  const best = tf.tidy(() => tf.argMin(tf.concat(errors, 0), 0));
  const indices = best.dataSync() as Int32Array;
  best.dispose();
  return indices;
}

/**
 * Output errors of many quantized versions of one operand in one product: the candidates are
 * stacked along the batch axis (the other operands repeated), the output is split back and the
 * squared error reduced to [candidates, slices of `axis`].
 */
function batchedOutputErrors(state: SearchState, others: ReadonlyMap<number, tf.Tensor>, operand: OperandSpec, candidates: tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => {
    const shortcut = state.site.kind === 'dynamic-matmul' ? foldedMatmulErrors(state, others, operand, candidates) : gramActivationErrors(state, others, operand, candidates);
    if (shortcut) return shortcut;
    const count = candidates.length;
    const operands = withOperand(others, operand, tf.concat(candidates, 0));
    for (const other of state.site.operands) {
      if (other !== operand && other.role === 'activation') {
        const value = operands.get(other.inputIndex) as tf.Tensor;
        operands.set(other.inputIndex, tf.tile(value, [count, ...value.shape.slice(1).map(() => 1)]));
      }
    }
    const output = siteProduct(state.program, state.site, operands);
    const split = tf.reshape(output, [count, ...state.target.shape]);
    const squared = tf.squaredDifference(split, tf.expandDims(state.target, 0));
    const axis = outputAxis(state.site, operand, output.rank);
    const keep = axis === undefined ? [0] : [0, axis + 1];
    return tf.reshape(meanKeeping(squared, keep), [count, -1]);
  });
}

/**
 * Output errors of candidates for one input of an activation-by-activation MatMul (attention), the
 * candidates folded into that input's rows (left operand) or columns (right operand): each batch
 * entry is then one product [C·m, k]x[k, n] or [m, k]x[k, C·n], which the wasm backend runs on
 * XNNPACK, instead of C·entries small products on its batched loop, and the other operand is not
 * repeated. Undefined when the shapes do not fit (broadcast batch axes, a scale axis in the matrix).
 */
function foldedMatmulErrors(state: SearchState, others: ReadonlyMap<number, tf.Tensor>, operand: OperandSpec, candidates: tf.Tensor[]): tf.Tensor | undefined {
  const node = state.program.nodes[state.site.nodeIndex];
  const other = state.site.operands.find((o) => o !== operand);
  const otherValue = other ? others.get(other.inputIndex) : undefined;
  const [value] = candidates;
  if (node.opType !== 'MatMul' || !otherValue || value.rank < 3 || otherValue.rank !== value.rank) return undefined;
  const lead = value.shape.slice(0, -2);
  if (!tf.util.arraysEqual(lead, otherValue.shape.slice(0, -2)) || (operand.axis !== undefined && operand.axis >= lead.length)) return undefined;
  const count = candidates.length;
  const entries = lead.reduce((a, b) => a * b, 1);
  const [rows, cols] = value.shape.slice(-2);
  const stacked = tf.reshape(tf.stack(candidates), [count, entries, rows, cols]);
  const otherMatrices = tf.reshape(otherValue, [entries, ...otherValue.shape.slice(-2)]);
  const left = operand.inputIndex === 0;
  const candidateAxis = left ? lead.length : lead.length + 1;
  const output = left
    ? tf.reshape(tf.matMul(tf.reshape(tf.transpose(stacked, [1, 0, 2, 3]), [entries, count * rows, cols]), otherMatrices), [...lead, count, rows, otherValue.shape[otherValue.rank - 1]])
    : tf.reshape(tf.matMul(otherMatrices, tf.reshape(tf.transpose(stacked, [1, 2, 0, 3]), [entries, rows, count * cols])), [...lead, otherValue.shape[otherValue.rank - 2], count, cols]);
  const squared = tf.squaredDifference(output, tf.expandDims(state.target, candidateAxis));
  const keep = operand.axis === undefined ? [candidateAxis] : [operand.axis, candidateAxis];
  const reduced = meanKeeping(squared, keep);
  return tf.reshape(operand.axis === undefined ? reduced : tf.transpose(reduced), [count, -1]);
}

/**
 * Output errors of per-tensor input candidates of a Linear wider at its output than at its input
 * (qkv, fc1), without running the product per candidate: with D = X̂_c − X, Ŵ the quantized weight
 * (as [in, out]) and E = X(Ŵ − W), ‖X̂_cŴ − XW‖² = ⟨DᵀD, ŴŴᵀ⟩ + 2⟨D, EŴᵀ⟩ + ‖E‖², one in×in Gram
 * matrix per candidate instead of an in×out product and the squared error over every output.
 */
function gramActivationErrors(state: SearchState, others: ReadonlyMap<number, tf.Tensor>, operand: OperandSpec, candidates: tf.Tensor[]): tf.Tensor | undefined {
  const node = state.program.nodes[state.site.nodeIndex];
  if (state.site.kind !== 'linear' || operand.role !== 'activation' || operand.axis !== undefined) return undefined;
  if (node.opType === 'Gemm' && (attrInt(node, 'transA', 0) !== 0 || attrFloat(node, 'alpha', 1) !== 1)) return undefined;
  const weightOperand = state.site.operands.find((o) => o.role === 'weight');
  const quantizedWeight = weightOperand ? others.get(weightOperand.inputIndex) : undefined;
  if (!weightOperand || !quantizedWeight || quantizedWeight.rank !== 2) return undefined;
  const wq = asInputByOutput(state, quantizedWeight);
  const [inputs, outputs] = wq.shape;
  if (inputs >= outputs) return undefined;
  const x = tf.reshape(operandValue(state, operand), [-1, inputs]);
  const rows = x.shape[0];
  const e = tf.matMul(x, tf.sub(wq, asInputByOutput(state, operandValue(state, weightOperand))));
  const count = candidates.length;
  const d = tf.sub(tf.reshape(tf.stack(candidates), [count, rows, inputs]), tf.expandDims(x, 0));
  const quadratic = tf.sum(tf.reshape(tf.mul(tf.matMul(d, d, true, false), tf.matMul(wq, wq, false, true)), [count, -1]), 1);
  const linear = tf.sum(tf.reshape(tf.mul(d, tf.matMul(e, wq, false, true)), [count, -1]), 1);
  const total = tf.add(tf.add(quadratic, tf.mul(linear, 2)), tf.sum(tf.square(e)));
  return tf.reshape(tf.div(total, rows * outputs), [count, 1]);
}

/** Candidates per batched evaluation for an operand whose capture has `elements` values. */
function chunkSize(state: SearchState, elements: number): number {
  return Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(elements, state.target.size)));
}

/** Weight as [in, out] for a Linear (MatMul [in, out], Gemm [out, in] with transB), to share one Gram matrix. */
function asInputByOutput(state: SearchState, weight: tf.Tensor): tf.Tensor {
  const node = state.program.nodes[state.site.nodeIndex];
  return node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1 ? tf.transpose(weight) : weight;
}

/**
 * Per-channel output errors of weight candidates for a Linear, without running the product per
 * candidate: with X̂ the quantized input, ΔW = Ŵ − W and E₀ = (X̂ − X)W, the output error of
 * channel c is ΔW_cᵀ H ΔW_c + 2 ΔW_cᵀ M_c + const, where H = X̂ᵀX̂ and M = X̂ᵀE₀ (per row).
 */
function linearWeightErrors(state: SearchState, operand: OperandSpec, scales: tf.Tensor[]): tf.Tensor[] {
  const activation = state.site.operands.find((o) => o.role === 'activation') as OperandSpec;
  const input = operandValue(state, activation);
  const current = state.quantizers.get(operand.inputIndex) as UniformQuantizer;
  const weight = operandValue(state, operand);
  const [gram, cross] = tf.tidy(() => {
    const x = tf.reshape(input, [-1, input.shape[input.rank - 1]]);
    const xq = tf.reshape((state.quantizers.get(activation.inputIndex) as UniformQuantizer).apply(input), x.shape);
    const w = asInputByOutput(state, weight);
    const rows = x.shape[0];
    const e0 = tf.matMul(tf.sub(xq, x), w);
    return [tf.div(tf.matMul(xq, xq, true, false), rows), tf.div(tf.matMul(xq, e0, true, false), rows)];
  });
  const w = asInputByOutput(state, weight);
  const outputs = w.shape[1] as number;
  const errors: tf.Tensor[] = [];
  const perChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / w.size));
  for (let start = 0; start < scales.length; start += perChunk) {
    const chunk = scales.slice(start, start + perChunk);
    errors.push(tf.tidy(() => {
      const deltas = chunk.map((scale) => tf.sub(asInputByOutput(state, fakeQuantize(weight, scale, current.zeroPoint, operand.bits)), w));
      const delta = tf.concat(deltas, 1);
      const inputs = delta.shape[0] as number;
      // Per candidate c: columns c·out .. (c+1)·out of [in, C·out]; the cross term broadcast, not tiled.
      const weighted = tf.add(tf.reshape(tf.matMul(gram, delta), [inputs, chunk.length, outputs]), tf.expandDims(tf.mul(cross, 2), 1));
      const products = tf.reshape(tf.mul(tf.reshape(delta, [inputs, chunk.length, outputs]), weighted), [inputs, -1]);
      // Column sums as a product with ones: wasm reduces a leading axis by transposing the whole matrix.
      return tf.reshape(tf.matMul(tf.ones([1, inputs]), products), [chunk.length, outputs]);
    }));
  }
  if (w !== weight) w.dispose();
  gram.dispose();
  cross.dispose();
  return errors;
}

/**
 * Per-channel errors of convolution weight candidates in one product: the candidates are stacked
 * as extra output channels (the bias repeated to match), the output split back per candidate.
 */
function convWeightErrors(state: SearchState, operand: OperandSpec, scales: tf.Tensor[]): tf.Tensor[] {
  const current = state.quantizers.get(operand.inputIndex) as UniformQuantizer;
  const weight = operandValue(state, operand);
  const biasName = state.program.nodes[state.site.nodeIndex].inputs[2];
  const bias = biasName ? state.program.constantValue(biasName) : undefined;
  const others = otherOperandsQuantized(state, operand);
  const errors: tf.Tensor[] = [];
  const perChunk = chunkSize(state, state.target.size);
  for (let start = 0; start < scales.length; start += perChunk) {
    const chunk = scales.slice(start, start + perChunk);
    errors.push(tf.tidy(() => {
      const operands = withOperand(others, operand, tf.concat(chunk.map((scale) => fakeQuantize(weight, scale, current.zeroPoint, operand.bits)), 0));
      if (bias) operands.set(2, tf.tile(bias, [chunk.length]));
      const output = siteProduct(state.program, state.site, operands);
      const [n, , ...spatial] = state.target.shape;
      const split = tf.reshape(output, [n, chunk.length, -1, ...spatial]);
      const squared = tf.squaredDifference(split, tf.expandDims(state.target, 1));
      return meanKeeping(squared, [1, 2]);
    }));
  }
  others.forEach((t) => t.dispose());
  return errors;
}

/** Per output channel, the multiple α·s of the current scale that minimizes the output MSE. */
export function searchWeightScale(state: SearchState, operand: OperandSpec): void {
  const current = state.quantizers.get(operand.inputIndex) as UniformQuantizer;
  const grid = alphaGrid(state.eqN);
  const scales = grid.map((alpha) => tf.mul(current.scale, alpha));
  const errors = state.site.kind === 'linear' ? linearWeightErrors(state, operand, scales) : withLeadingImages(state, (subset) => convWeightErrors(subset, operand, scales));
  scales.forEach((t) => t.dispose());
  const best = bestPerSlice(errors);
  errors.forEach((e) => e.dispose());
  const scale = tf.tidy(() => tf.mul(current.scale, tf.reshape(tf.tensor1d(Array.from(best, (i) => grid[i])), current.scale.shape)));
  state.quantizers.set(operand.inputIndex, new UniformQuantizer(operand.bits, scale, current.zeroPoint));
  scale.dispose();
  current.dispose();
}

/** Rows of a value: one per slice of `axis` (one row for the whole tensor without an axis). */
function slices(value: tf.Tensor, axis: number | undefined): { rows: number; data: Float32Array } {
  if (axis === undefined) return { rows: 1, data: value.dataSync() as Float32Array };
  const perm = [axis, ...Array.from({ length: value.rank }, (_, i) => i).filter((i) => i !== axis)];
  const transposed = tf.transpose(value, perm);
  // Read outside tf.tidy: tidy walks a returned object's keys, which for a typed array is every element.
  const data = transposed.dataSync() as Float32Array;
  transposed.dispose();
  return { rows: value.shape[axis], data };
}

/** Lower and upper percentile bounds per slice for every level: [levels][slices]. */
function percentileBounds(value: tf.Tensor, axis: number | undefined, levels: readonly number[]): { lo: number[][]; hi: number[][] } {
  const { rows, data } = slices(value, axis);
  const width = data.length / rows;
  const stride = Math.max(1, Math.floor(width / PERCENTILE_SAMPLE));
  const lo = levels.map(() => new Array<number>(rows));
  const hi = levels.map(() => new Array<number>(rows));
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * width, (r + 1) * width);
    const sorted = (stride === 1 ? Float32Array.from(row) : Float32Array.from({ length: Math.ceil(width / stride) }, (_, i) => row[i * stride])).sort();
    const last = sorted.length - 1;
    levels.forEach((p, i) => {
      hi[i][r] = sorted[Math.round(p * last)];
      lo[i][r] = sorted[Math.round((1 - p) * last)];
    });
  }
  return { lo, hi };
}

/** Per slice (tensor or head), the percentile clipping range that minimizes the output MSE. */
export function searchActivationScale(state: SearchState, operand: OperandSpec): void {
  const levels = percentileLevels(state.eqN);
  const { lo, hi } = percentileBounds(operandValue(state, operand), operand.axis, levels);
  withLeadingImages(state, (subset) => pickActivationCandidate(subset, operand, levels, lo, hi));
}

/** Runs `work` on the state restricted to the first `searchImages` images of the capture. */
function withLeadingImages<T>(state: SearchState, work: (subset: SearchState) => T): T {
  if (state.target.shape[0] <= state.searchImages) return work(state);
  const head = (t: tf.Tensor): tf.Tensor => tf.slice(t, 0, state.searchImages);
  const subset = { ...state, target: head(state.target), inputs: new Map([...state.inputs].map(([i, t]) => [i, head(t)])) };
  try {
    return work(subset);
  } finally {
    subset.target.dispose();
    subset.inputs.forEach((t) => t.dispose());
  }
}

function pickActivationCandidate(state: SearchState, operand: OperandSpec, levels: number[], lo: number[][], hi: number[][]): void {
  const value = operandValue(state, operand);
  const shape = parameterShape(operand);
  const candidates = levels.map((_, i) => tf.tidy(() => minMaxParameters(tf.tensor(lo[i], shape), tf.tensor(hi[i], shape), operand.bits)));
  const errors: tf.Tensor[] = [];
  const others = otherOperandsQuantized(state, operand);
  const perChunk = chunkSize(state, value.size);
  for (let start = 0; start < candidates.length; start += perChunk) {
    const chunk = candidates.slice(start, start + perChunk);
    errors.push(tf.tidy(() => batchedOutputErrors(state, others, operand, chunk.map(({ scale, zeroPoint }) => fakeQuantize(value, scale, zeroPoint, operand.bits)))));
  }
  others.forEach((t) => t.dispose());
  const best = bestPerSlice(errors);
  errors.forEach((e) => e.dispose());
  const pick = (of: 'scale' | 'zeroPoint'): number[] => Array.from(best, (c, slice) => candidates[c][of].dataSync()[slice]);
  const [scale, zeroPoint] = [tf.tensor(pick('scale'), shape), tf.tensor(pick('zeroPoint'), shape)];
  const chosen = new UniformQuantizer(operand.bits, scale, zeroPoint);
  [scale, zeroPoint].forEach((t) => t.dispose());
  candidates.forEach((c) => { c.scale.dispose(); c.zeroPoint.dispose(); });
  state.quantizers.get(operand.inputIndex)?.dispose();
  state.quantizers.set(operand.inputIndex, chosen);
}

/** Alternates weight and activation searches (weights first, then activations in input order) for `rounds` rounds. */
export function searchSite(state: SearchState, rounds: number): void {
  const order = [...state.site.operands].sort((a, b) => Number(a.role !== 'weight') - Number(b.role !== 'weight'));
  for (let round = 0; round < rounds; round++) {
    for (const operand of order) {
      if (operand.role === 'weight') searchWeightScale(state, operand);
      else searchActivationScale(state, operand);
    }
  }
}
