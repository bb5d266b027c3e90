/** Builds small ONNX models in tests (protobuf bytes), so each test states the graph it needs. */
import { encodeModel, onnx } from '../../workers/engine/onnx/proto';
import { tensorToProto } from '../../workers/engine/onnx/tensor';

export interface ValueSpec {
  name: string;
  /** Numbers for fixed dims, strings for symbolic ones. */
  shape: (number | string)[];
  elemType?: number;
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, number | number[] | string>;
  domain?: string;
}

export interface ModelSpec {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers?: { name: string; shape: number[]; values: number[]; type?: number }[];
  opset?: number;
}

function valueInfo(v: ValueSpec): onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.elemType ?? onnx.TensorProto.DataType.FLOAT,
        shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: number | number[] | string): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  return Number.isInteger(value) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
}

export function buildModel(spec: ModelSpec): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: spec.opset ?? 17 }],
    graph: {
      name: 'test',
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
      initializer: (spec.initializers ?? []).map((t) => tensorToProto(t.name, t.type ?? onnx.TensorProto.DataType.FLOAT, t.shape, t.values)),
      node: spec.nodes.map((n, i) => ({
        name: `${n.op.toLowerCase()}_${i}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attributes ?? {}).map(([k, v]) => attribute(k, v)),
      })),
    },
  });
}

/** Deterministic values in [-1, 1). */
export function values(count: number, seed: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length: count }, () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return (state / 4294967296) * 2 - 1;
  });
}
