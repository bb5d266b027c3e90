/**
 * Builds a new ONNX model node by node, with fresh tensor names and the static shape of every
 * float tensor it creates: the training graphs of stage 2 are written this way, and their
 * gradient rules read those shapes.
 */
import { AttributeValue } from './graph';
import { encodeModel, onnx } from './proto';
import { tensorToProto } from './tensor';

const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

export type Shape = readonly number[];

/** An attribute from a plain value: integers and integer lists become INT/INTS unless `floats` names them. */
export function attributeProto(name: string, value: AttributeValue, isFloat = false): onnx.IAttributeProto {
  if (typeof value === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') return isFloat || !Number.isInteger(value) ? { name, type: AT.FLOAT, f: value } : { name, type: AT.INT, i: value };
  if (Array.isArray(value) && value.every((v) => typeof v === 'number')) {
    const numbers = value as number[];
    return isFloat || numbers.some((v) => !Number.isInteger(v)) ? { name, type: AT.FLOATS, floats: numbers } : { name, type: AT.INTS, ints: numbers };
  }
  throw new Error(`attribute '${name}': unsupported value for a built graph`);
}

export class ModelBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly shapes = new Map<string, Shape>();
  private readonly names = new Set<string>();
  private readonly scalars = new Map<number, string>();
  private counter = 0;

  constructor(private readonly opset = 17) {}

  /** Keeps names that nodes added later will use (copied source nodes) away from `fresh`. */
  reserve(names: Iterable<string>): void {
    for (const name of names) this.names.add(name);
  }

  /** A tensor or node name not used yet, derived from `hint`. */
  fresh(hint: string): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${this.counter++}`;
    this.names.add(name);
    return name;
  }

  shapeOf(name: string): Shape {
    const shape = this.shapes.get(name);
    if (!shape) throw new Error(`the shape of '${name}' is not known to the graph builder`);
    return shape;
  }

  setShape(name: string, shape: Shape): string {
    this.shapes.set(name, [...shape]);
    return name;
  }

  /** A float graph input of fixed shape. */
  input(name: string, shape: Shape, elemType: number = DT.FLOAT): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, elemType, shape));
    return this.setShape(name, shape);
  }

  output(name: string): void {
    this.outputs.push(valueInfo(name, DT.FLOAT, this.shapes.get(name)));
  }

  floats(hint: string, shape: Shape, values: ArrayLike<number>): string {
    const name = this.fresh(hint);
    this.initializers.push(tensorToProto(name, DT.FLOAT, shape, values));
    return this.setShape(name, shape);
  }

  /** A float scalar constant, one initializer per value however often it is asked for. */
  scalar(value: number): string {
    let name = this.scalars.get(value);
    if (!name) {
      name = this.floats('scalar', [], [value]);
      this.scalars.set(value, name);
    }
    return name;
  }

  /** A 1-D int64 constant (shapes, axes, indices). */
  int64s(hint: string, values: readonly number[]): string {
    const name = this.fresh(hint);
    this.initializers.push(tensorToProto(name, DT.INT64, [values.length], values));
    return name;
  }

  /** An initializer under a given name (constants read by copied nodes). */
  constant(name: string, onnxType: number, shape: Shape, values: ArrayLike<number>): void {
    this.names.add(name);
    this.initializers.push(tensorToProto(name, onnxType, shape, values));
    if (onnxType === DT.FLOAT) this.setShape(name, shape);
  }

  /** Adds a node as it is (a copied forward node); its outputs get `shapes` when given. */
  addNode(node: onnx.INodeProto, shapes: (Shape | undefined)[] = []): void {
    (node.output ?? []).forEach((o, i) => {
      if (!o) return;
      this.names.add(o);
      const shape = shapes[i];
      if (shape) this.setShape(o, shape);
    });
    this.nodes.push(node);
  }

  /**
   * A new node with one fresh output of the given shape; returns the output's name.
   * `floatAttributes` names attributes to write as floats even when their value is integral.
   */
  op(opType: string, inputs: string[], shape: Shape | undefined, attributes: Record<string, AttributeValue> = {}, floatAttributes: string[] = []): string {
    const output = this.fresh(`${opType.toLowerCase()}`);
    this.addNode({
      opType,
      name: output,
      input: inputs,
      output: [output],
      attribute: Object.entries(attributes).map(([k, v]) => attributeProto(k, v, floatAttributes.includes(k))),
    }, [shape]);
    return output;
  }

  toBytes(name: string): Uint8Array {
    return encodeModel({
      irVersion: 8,
      producerName: 'fimaq-training-graph',
      opsetImport: [{ domain: '', version: this.opset }],
      graph: { name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
    });
  }
}

function valueInfo(name: string, elemType: number, shape: Shape | undefined): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: shape ? { dim: shape.map((d) => ({ dimValue: d })) } : undefined } },
  };
}
