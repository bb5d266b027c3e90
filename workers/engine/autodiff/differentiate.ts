/**
 * Reverse-mode differentiation of a straight-line ONNX program into more ONNX: the forward nodes
 * are written, then, in reverse order, each node's gradient rule, so that one onnxruntime session
 * computes a loss and its gradients with respect to chosen inputs in a single run.
 */
import { GraphNode } from '../onnx/graph';
import { attributeProto, ModelBuilder, Shape } from '../onnx/model-builder';
import { onnx } from '../onnx/proto';
import { HostTensor } from '../onnx/tensor';
import { Gradient, GRADIENT_RULES, joinSlices, NoGradientRule, SAVED_OUTPUTS, SliceGradient } from './gradient-rules';

/** A forward computation that knows how to write itself and its gradient. */
export interface DifferentiableNode {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  emit(b: ModelBuilder): void;
  /** Gradients of the inputs flagged in `wanted`, from the outputs' gradients (undefined: none reaches it). */
  backward(dy: (string | undefined)[], wanted: boolean[], b: ModelBuilder): Gradient[];
}

export function hasGradientRule(opType: string): boolean {
  return Object.prototype.hasOwnProperty.call(GRADIENT_RULES, opType);
}

/**
 * An ONNX node of the source graph, emitted with its own attributes. `outputShapes` are the
 * static shapes of its outputs; `constantOf` gives the values of its constant inputs.
 */
export function onnxNode(node: GraphNode, outputShapes: (Shape | undefined)[], constantOf: (name: string) => HostTensor | undefined): DifferentiableNode {
  if (!hasGradientRule(node.opType)) throw new NoGradientRule(`${node.opType} '${node.name}' has no gradient rule`);
  const rule = GRADIENT_RULES[node.opType];
  let saved: string[] = [];
  return {
    inputs: node.inputs,
    outputs: node.outputs,
    emit(b) {
      saved = Array.from({ length: SAVED_OUTPUTS[node.opType] ?? 0 }, () => b.fresh(`${node.name}/saved`));
      const attribute = [...node.attributes].map(([name, value]) => attributeProto(name, value as never, FLOAT_ATTRIBUTES.has(name)));
      const proto: onnx.INodeProto = { opType: node.opType, name: node.name, input: [...node.inputs], output: [...node.outputs, ...saved], attribute };
      b.addNode(proto, outputShapes);
    },
    backward(dy, wanted, b) {
      return rule({ node, dy, wanted, b, saved, constantOf });
    },
  };
}

/** Float-typed attributes of the ops with rules (integral values would otherwise be written as INT). */
const FLOAT_ATTRIBUTES = new Set(['epsilon', 'alpha', 'beta', 'ratio', 'min', 'max']);

/**
 * Writes `nodes` (a topologically ordered program) and the gradient of the scalar `loss` with
 * respect to each of `parameters`; returns the gradients' tensor names in that order.
 */
export function differentiate(b: ModelBuilder, nodes: readonly DifferentiableNode[], loss: string, parameters: readonly string[]): string[] {
  const dependsOnParameters = new Set(parameters);
  for (const node of nodes) {
    node.emit(b);
    if (node.inputs.some((i) => dependsOnParameters.has(i))) node.outputs.forEach((o) => o && dependsOnParameters.add(o));
  }
  if (!dependsOnParameters.has(loss)) throw new Error(`the loss '${loss}' does not depend on the parameters`);
  // Every consumer of a tensor comes after its producer, so in reverse order a tensor's gradient
  // contributions are all in when its producer (or the end, for parameters) asks for them.
  const contributions = new Map<string, Gradient[]>([[loss, [b.scalar(1)]]]);
  const gradientOf = (name: string): string | undefined => {
    const parts = contributions.get(name);
    if (!parts) return undefined;
    const slices = parts.filter((p): p is SliceGradient => typeof p === 'object');
    const whole = parts.filter((p): p is string => typeof p === 'string');
    if (slices.length > 0) whole.push(joinSlices(b, slices));
    return whole.reduce((sum, g) => b.op('Add', [sum, g], b.shapeOf(name)));
  };
  for (const node of [...nodes].reverse()) {
    const wanted = node.inputs.map((i) => i !== '' && dependsOnParameters.has(i));
    if (!wanted.some(Boolean) || node.outputs.every((o) => !contributions.has(o))) continue;
    const dy = node.outputs.map(gradientOf);
    const dx = node.backward(dy, wanted, b);
    node.inputs.forEach((name, k) => {
      const grad = dx[k];
      if (!wanted[k] || !grad) return;
      contributions.set(name, [...(contributions.get(name) ?? []), grad]);
    });
  }
  return parameters.map((p) => {
    const grad = gradientOf(p);
    if (!grad) throw new Error(`no gradient reaches '${p}'`);
    return grad;
  });
}
