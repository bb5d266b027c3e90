/**
 * Records a forward program for `differentiate`: ONNX ops with their static output shapes,
 * constants the gradient rules can read, and nodes that never carry a gradient (random draws,
 * comparisons).
 */
import { AttributeValue, GraphNode } from '../onnx/graph';
import { attributeProto, ModelBuilder, Shape } from '../onnx/model-builder';
import { HostTensor } from '../onnx/tensor';
import { DifferentiableNode, differentiate, onnxNode } from './differentiate';

export class Tape {
  readonly nodes: DifferentiableNode[] = [];
  private readonly constants = new Map<string, HostTensor>();

  constructor(readonly b: ModelBuilder) {}

  constantOf = (name: string): HostTensor | undefined => this.constants.get(name);

  /** Remembers a constant's value for the gradient rules (the initializer is written separately). */
  knowConstant(name: string, value: HostTensor): void {
    this.constants.set(name, value);
  }

  int64s(hint: string, values: readonly number[]): string {
    const name = this.b.int64s(hint, values);
    this.constants.set(name, { dtype: 'int32', shape: [values.length], data: Int32Array.from(values) });
    return name;
  }

  /** Appends an op differentiated by its gradient rule; returns its output. */
  op(opType: string, inputs: string[], shape: Shape, attributes: Record<string, AttributeValue> = {}): string {
    const output = this.b.fresh(opType.toLowerCase());
    const node: GraphNode = { name: output, opType, domain: '', inputs, outputs: [output], attributes: new Map(Object.entries(attributes)) };
    this.nodes.push(onnxNode(node, [shape], this.constantOf));
    return output;
  }

  /** Appends an op through which no gradient flows (its output is treated as a constant). */
  opaque(opType: string, inputs: string[], shape?: Shape, attributes: Record<string, AttributeValue> = {}, floatAttributes: string[] = []): string {
    const output = this.b.fresh(opType.toLowerCase());
    const attribute = Object.entries(attributes).map(([k, v]) => attributeProto(k, v, floatAttributes.includes(k)));
    this.nodes.push({
      inputs,
      outputs: [output],
      emit: (b) => b.addNode({ opType, name: output, input: inputs, output: [output], attribute }, [shape]),
      backward: () => inputs.map(() => undefined),
    });
    return output;
  }

  push(node: DifferentiableNode): void {
    this.nodes.push(node);
  }

  /** Writes the recorded program and the gradients of `loss`; returns the gradient names. */
  differentiate(loss: string, parameters: readonly string[]): string[] {
    return differentiate(this.b, this.nodes, loss, parameters);
  }
}
