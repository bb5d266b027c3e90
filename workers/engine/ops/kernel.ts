/** The contract every op kernel follows, and helpers to read attributes and small constant inputs. */
import { InputError } from '../../data/errors';
import * as tf from '@tensorflow/tfjs';
import { AttributeValue, GraphNode } from '../onnx/graph';
import { HostTensor } from '../onnx/tensor';

export interface OpContext {
  node: GraphNode;
  opset: number;
}

/** Inputs in ONNX order; an omitted optional input is undefined. Returns the node's outputs in order. */
export type OpKernel = (inputs: (tf.Tensor | undefined)[], ctx: OpContext) => tf.Tensor[];

export type KernelTable = Record<string, OpKernel>;

function attribute(node: GraphNode, name: string): AttributeValue | undefined {
  return node.attributes.get(name);
}

export function attrInt(node: GraphNode, name: string, fallback: number): number {
  const v = attribute(node, name);
  return typeof v === 'number' ? v : fallback;
}

export function attrFloat(node: GraphNode, name: string, fallback: number): number {
  return attrInt(node, name, fallback);
}

export function attrInts(node: GraphNode, name: string): number[] | undefined {
  const v = attribute(node, name);
  return Array.isArray(v) ? (v as number[]) : undefined;
}

export function attrString(node: GraphNode, name: string, fallback: string): string {
  const v = attribute(node, name);
  return typeof v === 'string' ? v : fallback;
}

export function attrTensor(node: GraphNode, name: string): HostTensor | undefined {
  const v = attribute(node, name);
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
}

export function hostToTf(t: HostTensor): tf.Tensor {
  return tf.tensor(t.data, t.shape, t.dtype);
}

/** Values of a small integer tensor (shapes, axes, indices): read synchronously, never on the hot path. */
export function intsOf(t: tf.Tensor): number[] {
  return Array.from(t.dataSync(), (v) => Math.trunc(v));
}

export function required(inputs: (tf.Tensor | undefined)[], index: number, ctx: OpContext): tf.Tensor {
  const t = inputs[index];
  if (!t) throw new InputError(`${ctx.node.opType} node '${ctx.node.name}' is missing its input #${index}`);
  return t;
}

export function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Axes given as attribute before `inputSinceOpset`, as an optional input from then on. */
export function axesOf(inputs: (tf.Tensor | undefined)[], index: number, ctx: OpContext, inputSinceOpset: number): number[] | undefined {
  if (ctx.opset >= inputSinceOpset) {
    const t = inputs[index];
    return t ? intsOf(t) : undefined;
  }
  return attrInts(ctx.node, 'axes');
}

export function unsupported(ctx: OpContext, what: string): never {
  throw new InputError(`${ctx.node.opType} node '${ctx.node.name}': ${what} is not supported by the engine`);
}
