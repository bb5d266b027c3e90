/**
 * Quantization sites found from the graph: every matrix product the quantized model computes in
 * integers. A product with a constant weight (MatMul, Gemm, Conv) quantizes the weight per output
 * channel and its activation input; a MatMul of two activations (QKᵀ, AV) quantizes both inputs.
 */
import { attrInt } from './ops/kernel';
import { OnnxProgram } from './program';
import { BitWidths } from './bits';

export type SiteKind = 'linear' | 'conv' | 'dynamic-matmul';
export type SitePosition = 'patch-embedding' | 'body' | 'head';
export type Granularity = 'per-tensor' | 'per-channel' | 'per-token' | 'per-head';

export interface OperandSpec {
  inputIndex: number;
  tensor: string;
  role: 'weight' | 'activation';
  bits: number;
  granularity: Granularity;
  /** The axis that keeps its own scale (channel, token or head); undefined per tensor. */
  axis?: number;
  /** Operand shape at batch size 1 (weights: their real shape). */
  shape: number[];
}

export interface QuantSite {
  /** Stable id: the node name. */
  id: string;
  nodeIndex: number;
  opType: string;
  kind: SiteKind;
  position: SitePosition;
  operands: OperandSpec[];
}

export interface SiteOptions extends BitWidths {
  /** Inputs of Linear layers: per tensor (deployable on integer kernels) or per token. */
  linearActivations?: 'per-tensor' | 'per-token';
  /** Inputs of attention matmuls (QKᵀ, AV): per head, or per tensor (all-integer export). */
  attentionActivations?: 'per-head' | 'per-tensor';
  /** Bits for the patch-embedding input (default 8: the raw image is cheap and sensitive). */
  patchEmbeddingInputBits?: number;
}

function weightChannelAxis(program: OnnxProgram, nodeIndex: number, rank: number): number {
  const node = program.nodes[nodeIndex];
  if (node.opType === 'Conv') return 0;
  if (node.opType === 'Gemm') return attrInt(node, 'transB', 0) === 1 ? 0 : 1;
  return rank - 1;
}

function activationOperand(
  program: OnnxProgram, tensor: string, inputIndex: number, bits: number, wanted: Granularity,
): OperandSpec {
  const shape = program.shapesAtBatchOne.get(tensor);
  if (!shape) throw new Error(`the shape of activation '${tensor}' is unknown; load the model with loadImageModel`);
  // Granularities need a token axis ([N, T, C]) or a head axis ([N, H, T, D]); otherwise one scale.
  if (wanted === 'per-token' && shape.length >= 3) return { inputIndex, tensor, role: 'activation', bits, granularity: wanted, axis: shape.length - 2, shape };
  if (wanted === 'per-head' && shape.length === 4) return { inputIndex, tensor, role: 'activation', bits, granularity: wanted, axis: 1, shape };
  return { inputIndex, tensor, role: 'activation', bits, granularity: 'per-tensor', shape };
}

export function findSites(program: OnnxProgram, options: SiteOptions): QuantSite[] {
  const linearGranularity = options.linearActivations ?? 'per-tensor';
  const attentionGranularity = options.attentionActivations ?? 'per-head';
  const sites: QuantSite[] = [];
  for (const nodeIndex of program.dataNodes) {
    const node = program.nodes[nodeIndex];
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm' && node.opType !== 'Conv') continue;
    const [x, w] = node.inputs;
    if (program.isConstant(x)) continue;
    if (program.isConstant(w)) {
      const weight = program.constantValue(w);
      if (!weight) continue;
      const isConv = node.opType === 'Conv';
      const activationBits = isConv ? options.patchEmbeddingInputBits ?? 8 : options.activationBits;
      sites.push({
        id: node.name,
        nodeIndex,
        opType: node.opType,
        kind: isConv ? 'conv' : 'linear',
        position: isConv ? 'patch-embedding' : 'body',
        operands: [
          activationOperand(program, x, 0, activationBits, isConv ? 'per-tensor' : linearGranularity),
          { inputIndex: 1, tensor: w, role: 'weight', bits: options.weightBits, granularity: 'per-channel', axis: weightChannelAxis(program, nodeIndex, weight.rank), shape: weight.shape },
        ],
      });
    } else if (node.opType === 'MatMul') {
      sites.push({
        id: node.name,
        nodeIndex,
        opType: node.opType,
        kind: 'dynamic-matmul',
        position: 'body',
        operands: [0, 1].map((i) => activationOperand(program, node.inputs[i], i, options.activationBits, attentionGranularity)),
      });
    }
  }
  // The classifier (or projection) head: the last product with a weight. It keeps the activation bit width.
  const head = [...sites].reverse().find((s) => s.kind === 'linear');
  if (head) head.position = 'head';
  return sites;
}
