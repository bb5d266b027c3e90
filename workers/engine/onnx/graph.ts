/** A plain view of an ONNX graph: nodes with decoded attributes, initializers as host tensors, typed inputs. */
import { onnx, Int64Like, decodeModel, defaultOpset, int64ToNumber } from './proto';
import { HostTensor, tensorFromProto } from './tensor';

export type AttributeValue = number | string | number[] | string[] | HostTensor;

export interface GraphNode {
  /** Unique within the graph: the ONNX node name, or `<op>_<index>` when the export left it empty. */
  name: string;
  opType: string;
  domain: string;
  /** Empty string marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: ReadonlyMap<string, AttributeValue>;
}

/** One dimension of a graph input: a number, or the symbolic name (e.g. "N") when dynamic. */
export type Dim = number | string;

export interface GraphValue {
  name: string;
  elemType: number;
  shape: Dim[] | undefined;
}

export interface OnnxGraph {
  model: onnx.ModelProto;
  opset: number;
  nodes: GraphNode[];
  initializers: Map<string, HostTensor>;
  /** Graph inputs that are not initializers. */
  inputs: GraphValue[];
  outputs: GraphValue[];
}

const AT = onnx.AttributeProto.AttributeType;
const utf8 = new TextDecoder();

function attributeValue(a: onnx.IAttributeProto): AttributeValue | undefined {
  switch (a.type) {
    case AT.FLOAT: return a.f ?? 0;
    case AT.INT: return int64ToNumber(a.i as Int64Like);
    case AT.STRING: return utf8.decode(a.s ?? new Uint8Array());
    case AT.TENSOR: return a.t ? tensorFromProto(a.t) : undefined;
    case AT.FLOATS: return a.floats ?? [];
    case AT.INTS: return (a.ints ?? []).map((v) => int64ToNumber(v as Int64Like));
    case AT.STRINGS: return (a.strings ?? []).map((s) => utf8.decode(s));
    default: return undefined; // graphs and sparse tensors: ops that need them are unsupported anyway
  }
}

function valueInfo(v: onnx.IValueInfoProto): GraphValue {
  const tensorType = v.type?.tensorType;
  const dims = tensorType?.shape?.dim;
  return {
    name: v.name ?? '',
    elemType: tensorType?.elemType ?? 0,
    shape: dims ? dims.map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? int64ToNumber(d.dimValue as Int64Like) : '?')) : undefined,
  };
}

export function graphFromModel(model: onnx.ModelProto): OnnxGraph {
  const graph = model.graph as onnx.IGraphProto;
  const initializers = new Map<string, HostTensor>();
  for (const init of graph.initializer ?? []) initializers.set(init.name ?? '', tensorFromProto(init));
  const used = new Set<string>();
  const nodes = (graph.node ?? []).map((n, index): GraphNode => {
    const opType = n.opType ?? '';
    let name = n.name || `${opType}_${index}`;
    while (used.has(name)) name = `${name}_${index}`;
    used.add(name);
    const attributes = new Map<string, AttributeValue>();
    for (const a of n.attribute ?? []) {
      const value = attributeValue(a);
      if (value !== undefined) attributes.set(a.name ?? '', value);
    }
    return { name, opType, domain: n.domain ?? '', inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attributes };
  });
  return {
    model,
    opset: defaultOpset(model),
    nodes,
    initializers,
    inputs: (graph.input ?? []).filter((i) => !initializers.has(i.name ?? '')).map(valueInfo),
    outputs: (graph.output ?? []).map(valueInfo),
  };
}

export function parseOnnx(bytes: Uint8Array, source?: string): OnnxGraph {
  return graphFromModel(decodeModel(bytes, source));
}
