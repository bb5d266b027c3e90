/**
 * Writes the simulated quantized model as ONNX in QDQ form, reproducing the engine's numerics:
 * - weights: int8 initializers (codes shifted into the signed range, so 4-bit weights lie in
 *   [-8, 7]) with a per-channel DequantizeLinear; 8-bit weights stay uint8, because x86 u8s8
 *   kernels (vpmaddubsw) saturate 16-bit pair sums of full-range int8 weights and uint8 inputs;
 * - per-tensor activations: [Clip to the b-bit range] -> QuantizeLinear(uint8) -> DequantizeLinear,
 *   the pattern onnxruntime fuses into integer kernels (the Clip keeps codes in 0..2^b-1);
 * - per-token / per-head activations: float fake quantization (Div, Round, Add, Clip, Sub, Mul),
 *   exactly the engine's formula.
 */
import { InputError } from '../../data/errors';
import * as tf from '@tensorflow/tfjs';
import { encodeModel, onnx } from '../onnx/proto';
import { tensorToProto } from '../onnx/tensor';
import { levels, quantizeToIntegers, UniformQuantizer } from '../quantizer';
import { QuantizedModel } from '../simulation';
import { OperandSpec, QuantSite } from '../sites';

const DT = onnx.TensorProto.DataType;
const MIN_EXPORT_OPSET = 13; // per-axis DequantizeLinear

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

function weightNodes(w: GraphWriter, model: QuantizedModel, operand: OperandSpec, quantizer: UniformQuantizer): onnx.INodeProto[] {
  const weight = model.program.constantValue(operand.tensor) as tf.Tensor;
  const signed = quantizer.bits < 8;
  const offset = signed ? levels(quantizer.bits) / 2 : 0; // shifts codes 0..L-1 into int8's signed range
  const codeType = signed ? DT.INT8 : DT.UINT8;
  const codes = tf.tidy(() => quantizeToIntegers(weight, quantizer.scale, quantizer.zeroPoint, quantizer.bits).sub(offset).dataSync());
  const scales = quantizer.scale.dataSync();
  const zeroPoints = Array.from(quantizer.zeroPoint.dataSync(), (z) => z - offset);
  const perChannel = operand.axis !== undefined;
  const q = w.constant('weight_codes', codeType, weight.shape, codes);
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

function floatFakeQuantNodes(w: GraphWriter, input: string, quantizer: UniformQuantizer): onnx.INodeProto[] {
  const shape = quantizer.scale.shape;
  const scale = w.constant('act_scale', DT.FLOAT, shape, quantizer.scale.dataSync());
  const zero = w.constant('act_zero_point', DT.FLOAT, shape, quantizer.zeroPoint.dataSync());
  const lo = w.constant('code_min', DT.FLOAT, [], [0]);
  const hi = w.constant('code_max', DT.FLOAT, [], [levels(quantizer.bits) - 1]);
  const chain: onnx.INodeProto[] = [];
  const step = (op: string, inputs: string[]): string => {
    const node = w.node(op, inputs);
    chain.push(node);
    return node.output?.[0] as string;
  };
  const codes = step('Clip', [step('Add', [step('Round', [step('Div', [input, scale])]), zero]), lo, hi]);
  step('Mul', [step('Sub', [codes, zero]), scale]);
  return chain;
}

function operandNodes(w: GraphWriter, model: QuantizedModel, site: QuantSite, operand: OperandSpec, input: string): onnx.INodeProto[] {
  const quantizer = model.quantizerOf(site, operand);
  if (operand.role === 'weight') return weightNodes(w, model, operand, quantizer);
  return operand.granularity === 'per-tensor' ? perTensorActivationNodes(w, input, quantizer) : floatFakeQuantNodes(w, input, quantizer);
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

export function exportQdq(model: QuantizedModel, metadata: ExportMetadata = {}): Uint8Array {
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
  const inserted = new Map<number, onnx.INodeProto[]>();
  for (const site of model.sites) {
    const node = graph.node[site.nodeIndex];
    node.input ??= [];
    const before: onnx.INodeProto[] = [];
    for (const operand of site.operands) {
      const chain = operandNodes(w, model, site, operand, node.input[operand.inputIndex] as string);
      before.push(...chain);
      node.input[operand.inputIndex] = chain[chain.length - 1].output?.[0] as string;
    }
    inserted.set(site.nodeIndex, before);
  }
  graph.node = graph.node.flatMap((n, i) => [...(inserted.get(i) ?? []).map((p) => onnx.NodeProto.create(p)), n]);
  graph.initializer.push(...w.initializers.map((t) => onnx.TensorProto.create(t)));
  pruneUnused(graph);
  proto.producerName = 'vit-gateway fimaq';
  proto.metadataProps = [
    ...proto.metadataProps.filter((p) => !(p.key ?? '').startsWith('fimaq.')),
    ...Object.entries(metadata).map(([key, value]) => onnx.StringStringEntryProto.create({ key: `fimaq.${key}`, value })),
  ];
  return encodeModel(proto);
}
