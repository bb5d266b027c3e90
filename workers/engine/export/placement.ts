/**
 * Where the integer export quantizes each per-tensor activation of a MatMul site. A per-tensor
 * quantizer commutes with pure data movement (Transpose, Reshape, Gather with constant indices,
 * Split with constant sizes, Squeeze, Unsqueeze, Flatten, Identity), so an operand reached through such nodes is quantized
 * where the movement starts and the movement then runs on uint8 codes (a quarter of the bytes).
 * Operands that share that start with different quantizers, such as q, k and v sliced out of one
 * qkv product, are quantized together by one QuantizeLinear with per-axis scales along an axis
 * that separates them (attention: the q/k/v axis of the transposed qkv tensor). One QuantizeLinear
 * and one Clip replace one pair per operand; the codes are the same element by element.
 */
import * as tf from '@tensorflow/tfjs';
import { attrInt, attrInts } from '../ops/kernel';
import { OnnxProgram } from '../program';
import { levels, UniformQuantizer } from '../quantizer';
import { QuantizedModel, operandKey } from '../simulation';
import { OperandSpec, QuantSite } from '../sites';

const MOVES = new Set(['Transpose', 'Reshape', 'Gather', 'Split', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']);
/** Per-axis QuantizeLinear runs one pass per slice: keep the slices few (onnxruntime loops over them). */
const MAX_AXIS_SLICES = 64;

/** One QuantizeLinear (+ Clip below 8 bits) on `tensor`, per tensor or per slice along `axis`. */
export interface Placement {
  tensor: string;
  bits: number;
  scales: number[];
  zeros: number[];
  axis?: number;
  /** Below 8 bits the codes are clipped to 0..2^b-1, unless the tensor's own range keeps them there. */
  clip: boolean;
  /** Filled by the writer: the codes of `tensor`, and of each movement output it copied (by float name). */
  codes?: string;
  copies: Map<string, string>;
}

/** A movement node on an operand's path (graph index) and which of its outputs the path follows. */
export interface Step {
  node: number;
  output: string;
}

/** An operand's codes: its placement, then the movement steps from there to the operand. */
export interface OperandPlacement {
  placement: Placement;
  path: Step[];
  /** The operand's own per-tensor scale and zero point (what its integer kernel is told). */
  scale: number;
  zero: number;
}

interface Member {
  key: string;
  site: QuantSite;
  operand: OperandSpec;
  scale: number;
  zero: number;
  bits: number;
  /** Tensors from the movement's start to the operand, and the nodes between them. */
  tensors: string[];
  nodes: number[];
}

/**
 * Whether codes of `tensor` can exceed 2^b - 1 (QuantizeLinear's uint8 saturation already clamps
 * at 0). A Softmax output lies in [0, 1], so round(1 / s + z) <= 2^b - 1 makes the Clip redundant.
 */
function needsClip(program: OnnxProgram, tensor: string, bits: number, scale: number, zero: number): boolean {
  if (bits >= 8) return false;
  const producer = program.producerOf(tensor);
  const bounded = producer !== undefined && program.graph.nodes[producer].opType === 'Softmax';
  return !(bounded && 1 / scale + zero < levels(bits) - 1 + 0.5 - 1e-3);
}

/** The member's movement after its tensor at `offset`. */
const steps = (m: Member, offset: number): Step[] => m.nodes.slice(offset).map((node, k) => ({ node, output: m.tensors[offset + k + 1] }));

const quantizerKey = (m: { scale: number; zero: number; bits: number }): string => `${m.scale}|${m.zero}|${m.bits}`;

/** The batch is a dimension of its own (size 1 here), so a trace at batch 1 holds at any batch. */
function batchOnItsOwnAxis(program: OnnxProgram, tensor: string): boolean {
  const shape = program.shapesAtBatchOne.get(tensor);
  const axis = program.batchAxes.get(tensor);
  return shape !== undefined && axis !== undefined && shape[axis] === 1;
}

function movementPath(program: OnnxProgram, operand: string): { tensors: string[]; nodes: number[] } {
  const tensors = [operand];
  const nodes: number[] = [];
  for (;;) {
    const producer = program.producerOf(tensors[0]);
    if (producer === undefined || !batchOnItsOwnAxis(program, tensors[0])) break;
    const node = program.graph.nodes[producer];
    if (!MOVES.has(node.opType) || node.domain || !node.inputs[0] || !batchOnItsOwnAxis(program, node.inputs[0])) break;
    if (node.opType === 'Gather' && !program.isConstant(node.inputs[1])) break;
    if (node.opType === 'Split' && node.inputs[1] && !program.isConstant(node.inputs[1])) break;
    tensors.unshift(node.inputs[0]);
    nodes.unshift(producer);
  }
  return { tensors, nodes };
}

/** For each element of the path's last tensor (batch 1), its flat index in the first; undefined if a shape is unknown. */
function traceIndices(program: OnnxProgram, start: string, nodes: number[], tensors: string[]): Int32Array | undefined {
  const shape = program.shapesAtBatchOne.get(start);
  if (!shape) return undefined;
  const traced = tf.tidy(() => {
    let t: tf.Tensor = tf.range(0, shape.reduce((a, b) => a * b, 1), 1, 'int32').reshape(shape);
    for (const [step, index] of nodes.entries()) {
      const node = program.graph.nodes[index];
      const output = tensors[step + 1];
      const out = program.shapesAtBatchOne.get(output);
      if (!out) return undefined;
      if (node.opType === 'Split') {
        const axis = (attrInt(node, 'axis', 0) + t.rank) % t.rank;
        const given = node.inputs[1] ? Array.from((program.constantValue(node.inputs[1]) as tf.Tensor).dataSync()) : attrInts(node, 'split');
        const sizes = given ?? node.outputs.map(() => t.shape[axis] / node.outputs.length);
        t = tf.split(t, sizes, axis)[node.outputs.indexOf(output)];
      } else if (node.opType === 'Transpose') {
        t = tf.transpose(t, attrInts(node, 'perm'));
      } else if (node.opType === 'Gather') {
        const axis = (attrInt(node, 'axis', 0) + t.rank) % t.rank;
        const indices = program.constantValue(node.inputs[1]) as tf.Tensor;
        const size = t.shape[axis];
        const size32 = tf.scalar(size, 'int32');
        t = tf.gather(t, tf.mod(tf.add(tf.cast(indices, 'int32'), size32), size32), axis);
      } else {
        t = t.reshape(out);
      }
      if (!tf.util.arraysEqual(t.shape, out)) return undefined;
    }
    return t;
  });
  if (!traced) return undefined;
  const values = traced.dataSync() as Int32Array;
  traced.dispose();
  return values;
}

/** Every reader of the tensors the nodes write is one of the nodes or one of the sites (the float copies then go unused). */
function movementIsPrivate(nodes: Set<number>, sites: Set<number>, program: OnnxProgram, readers: Map<string, number[]>, outputs: Set<string>): boolean {
  for (const index of nodes) {
    for (const out of program.graph.nodes[index].outputs.filter((o) => o)) {
      if (outputs.has(out) || (readers.get(out) ?? []).some((r) => !nodes.has(r) && !sites.has(r))) return false;
    }
  }
  return true;
}

/**
 * Operands with different quantizers sharing a start: one QuantizeLinear with per-axis scales on
 * the last tensor their paths share, along the first axis whose index alone says which operand an
 * element belongs to. Undefined when no such axis exists.
 */
function mergedPlacement(program: OnnxProgram, members: Member[]): { placement: Placement; offset: number } | undefined {
  if (new Set(members.map((m) => m.bits)).size !== 1) return undefined;
  let offset = 0; // members[*].tensors[offset] is the last shared tensor
  while (members.every((m) => m.tensors.length > offset + 1 && m.tensors[offset + 1] === members[0].tensors[offset + 1])) offset++;
  const branch = members[0].tensors[offset];
  const shape = program.shapesAtBatchOne.get(branch);
  if (!shape) return undefined;
  const traces = members.map((m) => traceIndices(program, branch, m.nodes.slice(offset), m.tensors.slice(offset)));
  if (traces.some((t) => !t)) return undefined;
  const strides = shape.map((_, a) => shape.slice(a + 1).reduce((x, y) => x * y, 1));
  const batchAxis = program.batchAxes.get(branch) ?? 0;
  // Axes before the batch axis only: the slices per-axis QuantizeLinear loops over must not grow with the batch.
  for (let axis = 0, slices = shape[0]; axis < batchAxis && slices <= MAX_AXIS_SLICES; axis++, slices *= shape[axis] ?? 1) {
    const owner: (Member | undefined)[] = new Array(shape[axis]).fill(undefined);
    const fits = members.every((m, k) => (traces[k] as Int32Array).every((flat) => {
      const i = Math.floor(flat / strides[axis]) % shape[axis];
      const previous = owner[i];
      if (previous && quantizerKey(previous) !== quantizerKey(m)) return false;
      owner[i] = m;
      return true;
    }));
    if (!fits) continue;
    return {
      offset,
      placement: {
        tensor: branch, bits: members[0].bits, axis, copies: new Map(), clip: members[0].bits < 8,
        scales: owner.map((m) => m?.scale ?? 1), zeros: owner.map((m) => m?.zero ?? 0),
      },
    };
  }
  return undefined;
}

/**
 * Plans the codes of every per-tensor activation operand of the given (integer MatMul) sites.
 * Keyed by operandKey(site, operand).
 */
export function planActivationCodes(model: QuantizedModel, sites: readonly QuantSite[], readers: Map<string, number[]>, outputs: Set<string>): Map<string, OperandPlacement> {
  const { program } = model;
  const siteNodes = new Set(sites.map((s) => s.nodeIndex));
  const members: Member[] = [];
  for (const site of sites) {
    for (const operand of site.operands.filter((o) => o.role === 'activation')) {
      const q: UniformQuantizer = model.quantizerOf(site, operand);
      const { tensors, nodes } = movementPath(program, program.graph.nodes[site.nodeIndex].inputs[operand.inputIndex]);
      members.push({ key: operandKey(site, operand), site, operand, scale: q.scale.dataSync()[0], zero: q.zeroPoint.dataSync()[0], bits: q.bits, tensors, nodes });
    }
  }
  const plan = new Map<string, OperandPlacement>();
  const atOperand = new Map<string, Placement>();
  const placeAtOperand = (m: Member): void => {
    const tensor = m.tensors[m.tensors.length - 1];
    const key = `${tensor}|${quantizerKey(m)}`;
    let placement = atOperand.get(key);
    if (!placement) {
      placement = { tensor, bits: m.bits, scales: [m.scale], zeros: [m.zero], copies: new Map(), clip: needsClip(program, tensor, m.bits, m.scale, m.zero) };
      atOperand.set(key, placement);
    }
    plan.set(m.key, { placement, path: [], scale: m.scale, zero: m.zero });
  };
  const byStart = new Map<string, Member[]>();
  for (const m of members) byStart.set(m.tensors[0], [...(byStart.get(m.tensors[0]) ?? []), m]);
  for (const group of byStart.values()) {
    const movement = new Set(group.flatMap((m) => m.nodes));
    if (movement.size === 0 || !movementIsPrivate(movement, siteNodes, program, readers, outputs)) {
      group.forEach(placeAtOperand);
      continue;
    }
    if (new Set(group.map(quantizerKey)).size === 1) {
      const [first] = group;
      const tensor = first.tensors[0];
      const placement: Placement = { tensor, bits: first.bits, scales: [first.scale], zeros: [first.zero], copies: new Map(), clip: needsClip(program, tensor, first.bits, first.scale, first.zero) };
      group.forEach((m) => plan.set(m.key, { placement, path: steps(m, 0), scale: m.scale, zero: m.zero }));
      continue;
    }
    const merged = mergedPlacement(program, group);
    if (!merged) {
      group.forEach(placeAtOperand);
      continue;
    }
    group.forEach((m) => plan.set(m.key, { placement: merged.placement, path: steps(m, merged.offset), scale: m.scale, zero: m.zero }));
  }
  return plan;
}
