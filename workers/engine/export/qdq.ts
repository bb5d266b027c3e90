/**
 * Writes the simulated quantized model as ONNX in QDQ form, reproducing the engine's numerics:
 * - weights: int8 initializers (codes shifted into the signed range, so 4-bit weights lie in
 *   [-8, 7]) with a per-channel DequantizeLinear; 8-bit weights stay uint8, because x86 u8s8
 *   kernels (vpmaddubsw) saturate 16-bit pair sums of full-range int8 weights and uint8 inputs;
 * - MatMul sites whose activations all have per-tensor scales (form 'ort', the default): the
 *   integer kernel itself, com.microsoft MatMulIntegerToFloat, on uint8 codes from QuantizeLinear
 *   -> Clip(uint8, 0, 2^b-1); a constant bias Add after a Linear layer and a constant scalar Mul
 *   after an attention product (1/sqrt(d)) fold into it; an operand reached through data
 *   movement is quantized where the movement starts (placement.ts; see integerMatMul);
 * - other per-tensor activations (Conv, Gemm; every site with form 'qdq'): [Clip to the b-bit
 *   range] -> QuantizeLinear(uint8) -> DequantizeLinear, the standard ONNX pattern that
 *   onnxruntime fuses into integer kernels for MatMul (the Clip keeps codes in 0..2^b-1);
 * - per-token inputs of Linear layers: integer codes (form 'ort': QuantizeLinear per token;
 *   'qdq': the engine's formula in float) on MatMulIntegerToFloat with unit scales ('qdq':
 *   MatMulInteger), then exact zero-point correction and scaling in float (see perTokenIntegerMatMul);
 * - per-head attention inputs: float fake quantization (Div, Round, Add, Clip, Sub, Mul), exactly
 *   the engine's formula. (QuantizeLinear/DequantizeLinear per head would be fewer nodes, but
 *   onnxruntime 1.30 fuses a per-axis activation DequantizeLinear into MatMulIntegerToFloat, which
 *   then fails at run time: "a zero point must be a scalar".)
 */
import { InputError } from '../../data/errors';
import * as tf from '@tensorflow/tfjs';
import { encodeModel, onnx } from '../onnx/proto';
import { tensorToProto } from '../onnx/tensor';
import { levels, quantizeToIntegers, UniformQuantizer } from '../quantizer';
import { operandKey, QuantizedModel } from '../simulation';
import { OperandPlacement, planActivationCodes } from './placement';
import { OperandSpec, QuantSite } from '../sites';

const DT = onnx.TensorProto.DataType;
const MIN_EXPORT_OPSET = 13; // per-axis DequantizeLinear

export interface ExportOptions {
  /**
   * 'ort' (default): per-tensor MatMul sites are written as onnxruntime's integer kernel
   * (com.microsoft MatMulIntegerToFloat) with bias and scalar rescale folded in, fewer nodes than
   * onnxruntime's own QDQ fusion leaves. 'qdq': standard ONNX operators only (QuantizeLinear /
   * DequantizeLinear around float MatMuls), for runtimes other than onnxruntime.
   */
  form?: 'ort' | 'qdq';
}

export interface ExportMetadata {
  /** Free-form key/values stored in the model's metadata_props (method, bits, source...). */
  [key: string]: string;
}

class GraphWriter {
  readonly initializers: onnx.ITensorProto[] = [];
  private counter = 0;

  constructor(private readonly prefix: string) {}

  name(what: string): string {
    return `${this.prefix}/${what}_${this.counter++}`;
  }

  constant(what: string, onnxType: number, shape: readonly number[], values: ArrayLike<number>): string {
    const name = this.name(what);
    this.initializers.push(tensorToProto(name, onnxType, shape, values));
    return name;
  }

  node(opType: string, inputs: string[], attributes: onnx.IAttributeProto[] = []): onnx.INodeProto {
    const output = this.name(opType.toLowerCase());
    return { opType, name: output, input: inputs, output: [output], attribute: attributes };
  }
}

function intAttribute(name: string, value: number): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}

interface WeightCodes {
  /** Integer codes, shifted into int8 when signed. */
  codes: ArrayLike<number>;
  shape: number[];
  codeType: number;
  scales: ArrayLike<number>;
  /** Zero points in the same (shifted) code space. */
  zeroPoints: number[];
}

function weightCodes(model: QuantizedModel, operand: OperandSpec, quantizer: UniformQuantizer): WeightCodes {
  const weight = model.program.constantValue(operand.tensor) as tf.Tensor;
  const signed = quantizer.bits < 8;
  const offset = signed ? levels(quantizer.bits) / 2 : 0; // shifts codes 0..L-1 into int8's signed range
  const codes = tf.tidy(() => quantizeToIntegers(weight, quantizer.scale, quantizer.zeroPoint, quantizer.bits).sub(offset).dataSync());
  return {
    codes,
    shape: weight.shape,
    codeType: signed ? DT.INT8 : DT.UINT8,
    scales: quantizer.scale.dataSync(),
    zeroPoints: Array.from(quantizer.zeroPoint.dataSync(), (z) => z - offset),
  };
}

function weightNodes(w: GraphWriter, model: QuantizedModel, operand: OperandSpec, quantizer: UniformQuantizer): onnx.INodeProto[] {
  const { codes, shape, codeType, scales, zeroPoints } = weightCodes(model, operand, quantizer);
  const perChannel = operand.axis !== undefined;
  const q = w.constant('weight_codes', codeType, shape, codes);
  const scale = w.constant('weight_scale', DT.FLOAT, perChannel ? [scales.length] : [], scales);
  const zero = w.constant('weight_zero_point', codeType, perChannel ? [zeroPoints.length] : [], zeroPoints);
  return [w.node('DequantizeLinear', [q, scale, zero], perChannel ? [intAttribute('axis', operand.axis as number)] : [])];
}

function perTensorActivationNodes(w: GraphWriter, input: string, quantizer: UniformQuantizer): onnx.INodeProto[] {
  const s = quantizer.scale.dataSync()[0];
  const z = quantizer.zeroPoint.dataSync()[0];
  const nodes: onnx.INodeProto[] = [];
  let x = input;
  if (quantizer.bits < 8) {
    const lo = w.constant('clip_min', DT.FLOAT, [], [(0 - z) * s]);
    const hi = w.constant('clip_max', DT.FLOAT, [], [(levels(quantizer.bits) - 1 - z) * s]);
    nodes.push(w.node('Clip', [x, lo, hi]));
    x = nodes[0].output?.[0] as string;
  }
  const scale = w.constant('act_scale', DT.FLOAT, [], [s]);
  const zero = w.constant('act_zero_point', DT.UINT8, [], [z]);
  const quantize = w.node('QuantizeLinear', [x, scale, zero]);
  nodes.push(quantize, w.node('DequantizeLinear', [quantize.output?.[0] as string, scale, zero]));
  return nodes;
}

/** Nodes computing codes clamp(round(x / s) + z, 0, L-1) in float with broadcast s, z; returns the codes' name. */
function codeNodes(w: GraphWriter, input: string, quantizer: UniformQuantizer, scale: string, zero: string, chain: onnx.INodeProto[]): string {
  const lo = w.constant('code_min', DT.FLOAT, [], [0]);
  const hi = w.constant('code_max', DT.FLOAT, [], [levels(quantizer.bits) - 1]);
  const step = (op: string, inputs: string[]): string => {
    const node = w.node(op, inputs);
    chain.push(node);
    return node.output?.[0] as string;
  };
  return step('Clip', [step('Add', [step('Round', [step('Div', [input, scale])]), zero]), lo, hi]);
}

function floatFakeQuantNodes(w: GraphWriter, input: string, quantizer: UniformQuantizer): onnx.INodeProto[] {
  const shape = quantizer.scale.shape;
  const scale = w.constant('act_scale', DT.FLOAT, shape, quantizer.scale.dataSync());
  const zero = w.constant('act_zero_point', DT.FLOAT, shape, quantizer.zeroPoint.dataSync());
  const chain: onnx.INodeProto[] = [];
  const codes = codeNodes(w, input, quantizer, scale, zero, chain);
  const centered = w.node('Sub', [codes, zero]);
  chain.push(centered, w.node('Mul', [centered.output?.[0] as string, scale]));
  return chain;
}

/**
 * A MatMul with per-token input scales on integer kernels: uint8 codes q (per-token s_t, z_t) times
 * the weight codes with their per-column zero points on MatMulIntegerToFloat with unit scales
 * (form 'qdq': MatMulInteger, Cast) gives Σ q·(w - z_w) exactly; the
 * tokens' zero points come off as z_t · colsum(w - z_w), and s_t · s_w scales the exact integers.
 */
function perTokenIntegerMatMul(w: GraphWriter, model: QuantizedModel, site: QuantSite, node: onnx.INodeProto, integer: boolean): onnx.INodeProto[] {
  const [activation, weightOperand] = site.operands;
  const qa = model.quantizerOf(site, activation);
  const weight = weightCodes(model, weightOperand, model.quantizerOf(site, weightOperand));
  const [k, n] = weight.shape;
  const tokenShape = qa.scale.shape; // [1, T, 1]
  const tokens = qa.scale.size;
  const sa = qa.scale.dataSync();
  const za = qa.zeroPoint.dataSync();
  const columnSums = new Float64Array(n);
  for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) columnSums[c] += weight.codes[r * n + c] - weight.zeroPoints[c];
  const outShape = [...tokenShape.slice(0, -1), n];
  const zeroTerm = new Float32Array(tokens * n);
  const outScale = new Float32Array(tokens * n);
  for (let t = 0; t < tokens; t++) {
    for (let c = 0; c < n; c++) {
      zeroTerm[t * n + c] = za[t] * columnSums[c];
      outScale[t * n + c] = sa[t] * weight.scales[c];
    }
  }
  const chain: onnx.INodeProto[] = [];
  const wq = w.constant('weight_codes', weight.codeType, weight.shape, weight.codes);
  const wz = w.constant('weight_zero_point', weight.codeType, [n], weight.zeroPoints);
  let sums: string; // Σ q_a (q_w - z_w), exact integers
  if (integer) {
    // QuantizeLinear per token (a leading axis: one pass per row), Clip in uint8, then the integer
    // kernel with unit scales: its float result is the exact sum (|sum| < 2^24).
    const quantize = w.node('QuantizeLinear', [
      node.input?.[0] as string, w.constant('act_scale', DT.FLOAT, [tokens], sa), w.constant('act_zero_point', DT.UINT8, [tokens], za),
    ], [intAttribute('axis', tokenShape.length - 2)]);
    chain.push(quantize);
    let codes = quantize.output?.[0] as string;
    if (qa.bits < 8) {
      const clip = w.node('Clip', [codes, w.constant('code_min', DT.UINT8, [], [0]), w.constant('code_max', DT.UINT8, [], [levels(qa.bits) - 1])]);
      chain.push(clip);
      codes = clip.output?.[0] as string;
    }
    const one = w.constant('unit_scale', DT.FLOAT, [], [1]);
    const product: onnx.INodeProto = { ...w.node('MatMulIntegerToFloat', [codes, wq, one, one, '', wz]), domain: 'com.microsoft' };
    chain.push(product);
    sums = product.output?.[0] as string;
  } else {
    const scale = w.constant('act_scale', DT.FLOAT, tokenShape, sa);
    const zero = w.constant('act_zero_point', DT.FLOAT, tokenShape, za);
    const codes = codeNodes(w, node.input?.[0] as string, qa, scale, zero, chain);
    const asBytes = w.node('Cast', [codes], [intAttribute('to', DT.UINT8)]);
    const product = w.node('MatMulInteger', [asBytes.output?.[0] as string, wq, '', wz]);
    const asFloat = w.node('Cast', [product.output?.[0] as string], [intAttribute('to', DT.FLOAT)]);
    chain.push(asBytes, product, asFloat);
    sums = asFloat.output?.[0] as string;
  }
  const centered = w.node('Sub', [sums, w.constant('zero_term', DT.FLOAT, outShape, zeroTerm)]);
  const scaled: onnx.INodeProto = {
    opType: 'Mul', name: node.name, input: [centered.output?.[0] as string, w.constant('out_scale', DT.FLOAT, outShape, outScale)], output: node.output,
  };
  chain.push(centered, scaled);
  return chain;
}

/** The graph around the sites: who reads each tensor, and the nodes already folded into a site. */
interface GraphIndex {
  graph: onnx.GraphProto;
  readers: Map<string, number[]>;
  outputs: Set<string>;
  siteNodes: Set<number>;
  /** Nodes folded into a site's kernel, replaced by what maps to them in `replacements`. */
  folded: Set<number>;
  /** Where each per-tensor activation operand of an integer site is quantized, by operandKey. */
  placements: Map<string, OperandPlacement>;
}

/**
 * uint8 codes of a per-tensor activation operand as planned (placement.ts): QuantizeLinear at the
 * placement (per tensor or per axis), Clip in uint8 to 0..2^b-1 below 8 bits, then copies of the
 * movement nodes from there to the operand, each written once per placement.
 */
function placedCodes(w: GraphWriter, index: GraphIndex, placed: OperandPlacement, chain: onnx.INodeProto[]): string {
  const { placement } = placed;
  if (!placement.codes) {
    const perAxis = placement.axis !== undefined;
    const shape = perAxis ? [placement.scales.length] : [];
    const quantize = w.node('QuantizeLinear', [
      placement.tensor, w.constant('act_scale', DT.FLOAT, shape, placement.scales), w.constant('act_zero_point', DT.UINT8, shape, placement.zeros),
    ], perAxis ? [intAttribute('axis', placement.axis as number)] : []);
    chain.push(quantize);
    placement.codes = quantize.output?.[0] as string;
    if (placement.clip) {
      const clip = w.node('Clip', [placement.codes, w.constant('code_min', DT.UINT8, [], [0]), w.constant('code_max', DT.UINT8, [], [levels(placement.bits) - 1])]);
      chain.push(clip);
      placement.codes = clip.output?.[0] as string;
    }
  }
  let codes = placement.codes;
  for (const step of placed.path) {
    let copied = placement.copies.get(step.output);
    if (!copied) {
      // The node again, on codes; every output gets a name (Split has several).
      const original = index.graph.node[step.node];
      const outputs = (original.output ?? []).map((o) => (o ? w.name(`${(original.opType as string).toLowerCase()}_codes`) : ''));
      chain.push({ opType: original.opType, name: outputs.find((o) => o), input: [codes, ...(original.input ?? []).slice(1)], output: outputs, attribute: original.attribute ?? [] });
      (original.output ?? []).forEach((o, k) => o && placement.copies.set(o, outputs[k]));
      copied = placement.copies.get(step.output) as string;
    }
    codes = copied;
  }
  return codes;
}

/** The single node that reads `tensor`, when nothing else (not a graph output) does. */
function soleReader(index: GraphIndex, tensor: string): number | undefined {
  const readers = index.readers.get(tensor) ?? [];
  if (readers.length !== 1 || index.outputs.has(tensor) || index.siteNodes.has(readers[0]) || index.folded.has(readers[0])) return undefined;
  return readers[0];
}

/** The other input of a binary node when it is a constant of the given size (and rank 1 if size > 1). */
function constantOperand(model: QuantizedModel, node: onnx.INodeProto, input: string, size: number): { name: string; value: tf.Tensor } | undefined {
  const other = (node.input ?? []).find((i) => i !== input);
  const value = other !== undefined && (node.input ?? []).length === 2 ? model.program.constantValue(other) : undefined;
  if (!value || value.dtype !== 'float32' || value.size !== size || (size > 1 && value.shape.length !== 1)) return undefined;
  return { name: other as string, value };
}

/** A MatMul whose activation operands all have per-tensor scales and whose weight (if any) is per column or per tensor. */
function isIntegerMatMul(model: QuantizedModel, site: QuantSite): boolean {
  return site.opType === 'MatMul' && site.operands.every((operand) => {
    const quantizer = model.quantizerOf(site, operand);
    if (operand.role === 'activation') return quantizer.scale.size === 1;
    return operand.shape.length === 2 && (quantizer.scale.size === 1 || operand.axis === 1);
  });
}

/**
 * A per-tensor MatMul site as onnxruntime's integer kernel, com.microsoft MatMulIntegerToFloat:
 * uint8 activation codes (QuantizeLinear -> Clip), int8 (below 8 bits) or uint8 weight codes, the
 * scales and zero points of both, and the result (a_scale * b_scale * exact int32 sum) in float.
 * A constant bias Add that alone reads the product becomes the kernel's bias input, and a constant
 * scalar Mul (attention's 1/sqrt(d)) folds into a_scale. Returns the nodes at the site and the
 * position of the kernel: the folded node's, so that the bias or scalar is already defined there.
 */
function integerMatMul(w: GraphWriter, model: QuantizedModel, site: QuantSite, node: onnx.INodeProto, index: GraphIndex, replacements: Map<number, onnx.INodeProto[]>): void {
  const chain: onnx.INodeProto[] = [];
  const inputs: { codes: string; scale: string; zero: string }[] = [];
  let aScale = 1;
  for (const operand of [...site.operands].sort((a, b) => a.inputIndex - b.inputIndex)) {
    const quantizer = model.quantizerOf(site, operand);
    if (operand.role === 'weight') {
      const weight = weightCodes(model, operand, quantizer);
      const perColumn = weight.scales.length > 1;
      inputs.push({
        codes: w.constant('weight_codes', weight.codeType, weight.shape, weight.codes),
        scale: w.constant('weight_scale', DT.FLOAT, perColumn ? [weight.scales.length] : [], weight.scales),
        zero: w.constant('weight_zero_point', weight.codeType, perColumn ? [weight.zeroPoints.length] : [], weight.zeroPoints),
      });
    } else {
      const placed = index.placements.get(operandKey(site, operand)) as OperandPlacement;
      const codes = placedCodes(w, index, placed, chain);
      const { scale, zero } = placed;
      if (inputs.length === 0) aScale = scale;
      inputs.push({ codes, scale: w.constant('act_scale', DT.FLOAT, [], [scale]), zero: w.constant('act_zero_point', DT.UINT8, [], [zero]) });
    }
  }
  const [a, b] = inputs;
  const kernelInputs = [a.codes, b.codes, a.scale, b.scale, a.zero, b.zero];
  let output = node.output?.[0] as string;
  let at = site.nodeIndex;
  const next = soleReader(index, output);
  const columns = site.operands.find((o) => o.inputIndex === 1)?.shape.at(-1) ?? 0;
  if (next !== undefined) {
    const reader = index.graph.node[next];
    const bias = reader.opType === 'Add' && columns > 1 ? constantOperand(model, reader, output, columns) : undefined;
    const factor = reader.opType === 'Mul' ? constantOperand(model, reader, output, 1) : undefined;
    if (bias) kernelInputs.push(bias.name);
    if (factor) kernelInputs[2] = w.constant('act_scale', DT.FLOAT, [], [aScale * factor.value.dataSync()[0]]);
    if (bias || factor) {
      output = reader.output?.[0] as string;
      at = next;
      index.folded.add(next);
    }
  }
  const kernel: onnx.INodeProto = { opType: 'MatMulIntegerToFloat', domain: 'com.microsoft', name: node.name, input: kernelInputs, output: [output] };
  if (at === site.nodeIndex) {
    replacements.set(site.nodeIndex, [...chain, kernel]);
  } else {
    replacements.set(site.nodeIndex, chain);
    replacements.set(at, [kernel]);
  }
}

/**
 * Export forms follow the quantizers' actual scale shapes, not the granularity the sites were
 * created with: a method may replace a quantizer with a finer one (per token, per head x token).
 */
function hasPerTokenScales(quantizer: UniformQuantizer, activationRank: number): boolean {
  const shape = quantizer.scale.shape;
  return quantizer.scale.size > 1 && shape.length === activationRank && shape.every((d, i) => i === activationRank - 2 || d === 1);
}

function isPerTokenLinear(model: QuantizedModel, site: QuantSite): boolean {
  const [activation, weight] = site.operands;
  return site.opType === 'MatMul' && site.kind === 'linear' && weight.shape.length === 2 && weight.axis === 1
    && hasPerTokenScales(model.quantizerOf(site, activation), activation.shape.length);
}

function operandNodes(w: GraphWriter, model: QuantizedModel, site: QuantSite, operand: OperandSpec, input: string): onnx.INodeProto[] {
  const quantizer = model.quantizerOf(site, operand);
  if (operand.role === 'weight') return weightNodes(w, model, operand, quantizer);
  return quantizer.scale.size === 1 ? perTensorActivationNodes(w, input, quantizer) : floatFakeQuantNodes(w, input, quantizer);
}

/** Drops nodes whose outputs nothing reads and initializers no node reads (e.g. replaced float weights). */
function pruneUnused(graph: onnx.IGraphProto): void {
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  let nodes = graph.node ?? [];
  for (;;) {
    const read = new Set([...outputs, ...nodes.flatMap((n) => n.input ?? [])]);
    const kept = nodes.filter((n) => (n.output ?? []).some((o) => read.has(o)));
    if (kept.length === nodes.length) break;
    nodes = kept;
  }
  graph.node = nodes;
  const read = new Set(nodes.flatMap((n) => n.input ?? []));
  graph.initializer = (graph.initializer ?? []).filter((t) => read.has(t.name ?? ''));
}

export function exportQdq(model: QuantizedModel, metadata: ExportMetadata = {}, options: ExportOptions = {}): Uint8Array {
  const { program } = model;
  if (program.graph.opset < MIN_EXPORT_OPSET) {
    throw new InputError(`QDQ export needs opset >= ${MIN_EXPORT_OPSET} (per-channel DequantizeLinear); the model imports opset ${program.graph.opset}. Re-export it at opset 13 or later.`);
  }
  const proto = onnx.ModelProto.decode(encodeModel(program.graph.model));
  const graph = proto.graph as onnx.GraphProto;
  const w = new GraphWriter('fimaq');
  for (const name of program.changedConstants) {
    const value = program.constantValue(name) as tf.Tensor;
    graph.initializer = graph.initializer.map((t) => (t.name === name ? onnx.TensorProto.create(tensorToProto(name, DT.FLOAT, value.shape, value.dataSync())) : t));
  }
  // Each site's node is replaced by its quantization chains followed by the node (or by a whole integer form).
  const replacements = new Map<number, onnx.INodeProto[]>();
  const index: GraphIndex = {
    graph, readers: new Map(), outputs: new Set(graph.output.map((o) => o.name ?? '')), siteNodes: new Set(model.sites.map((s) => s.nodeIndex)), folded: new Set(), placements: new Map(),
  };
  graph.node.forEach((n, i) => (n.input ?? []).forEach((input) => index.readers.set(input, [...(index.readers.get(input) ?? []), i])));
  const integer = (options.form ?? 'ort') === 'ort';
  // Sites in graph order: a placement shared by several sites is written at the first.
  const sites = [...model.sites].sort((a, b) => a.nodeIndex - b.nodeIndex);
  if (integer) index.placements = planActivationCodes(model, sites.filter((s) => isIntegerMatMul(model, s)), index.readers, index.outputs);
  for (const site of sites) {
    const node = graph.node[site.nodeIndex];
    node.input ??= [];
    if (integer && isIntegerMatMul(model, site)) {
      integerMatMul(w, model, site, node, index, replacements);
      continue;
    }
    if (isPerTokenLinear(model, site)) {
      replacements.set(site.nodeIndex, perTokenIntegerMatMul(w, model, site, node, integer));
      continue;
    }
    const nodes: onnx.INodeProto[] = [];
    for (const operand of site.operands) {
      const chain = operandNodes(w, model, site, operand, node.input[operand.inputIndex] as string);
      nodes.push(...chain);
      node.input[operand.inputIndex] = chain[chain.length - 1].output?.[0] as string;
    }
    replacements.set(site.nodeIndex, [...nodes, node]);
  }
  graph.node = graph.node.flatMap((n, i) => (replacements.get(i) ?? [n]).map((p) => onnx.NodeProto.create(p)));
  graph.initializer.push(...w.initializers.map((t) => onnx.TensorProto.create(t)));
  if (graph.node.some((n) => n.domain === 'com.microsoft') && !proto.opsetImport.some((o) => o.domain === 'com.microsoft')) {
    proto.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: 'com.microsoft', version: 1 }));
  }
  pruneUnused(graph);
  proto.producerName = 'vit-gateway fimaq';
  proto.metadataProps = [
    ...proto.metadataProps.filter((p) => !(p.key ?? '').startsWith('fimaq.')),
    ...Object.entries(metadata).map(([key, value]) => onnx.StringStringEntryProto.create({ key: `fimaq.${key}`, value })),
  ];
  return encodeModel(proto);
}
