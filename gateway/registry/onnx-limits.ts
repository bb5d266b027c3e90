import { onnx } from 'onnx-proto';
import { invalidModel } from '../errors';

/** What an ONNX artifact may contain to be registered; the file size is MAX_UPLOAD_BYTES's business. */
export interface OnnxLimits {
  /** Nodes in the graph, subgraphs included. */
  maxNodes: number;
  /** Operators allowed: `OpType` for the default ONNX domain, `domain:OpType` for others. */
  allowedOps: ReadonlySet<string>;
}

/**
 * The operators of vision transformers and CNNs, their quantized (QDQ and integer) forms and
 * onnxruntime's fused integer product. Left out on purpose: control flow (Loop, Scan, If), whose
 * compute depends on the data, and every custom domain but onnxruntime's own.
 */
export const DEFAULT_ONNX_ALLOWED_OPS: readonly string[] = [
  'Abs', 'Add', 'And', 'ArgMax', 'ArgMin', 'AveragePool', 'BatchNormalization', 'Cast', 'CastLike', 'Ceil', 'Clip',
  'Concat', 'Constant', 'ConstantOfShape', 'Conv', 'ConvInteger', 'ConvTranspose', 'Cos', 'CumSum', 'DepthToSpace',
  'DequantizeLinear', 'Div', 'Dropout', 'DynamicQuantizeLinear', 'Einsum', 'Elu', 'Equal', 'Erf', 'Exp', 'Expand',
  'Flatten', 'Floor', 'Gather', 'GatherElements', 'GatherND', 'Gelu', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool',
  'Greater', 'GreaterOrEqual', 'GroupNormalization', 'HardSigmoid', 'HardSwish', 'Identity', 'InstanceNormalization',
  'IsInf', 'IsNaN', 'LayerNormalization', 'LeakyRelu', 'Less', 'LessOrEqual', 'Log', 'LogSoftmax', 'LpNormalization',
  'MatMul', 'MatMulInteger', 'Max', 'MaxPool', 'Mean', 'Min', 'Mod', 'Mul', 'Neg', 'Not', 'Or', 'PRelu', 'Pad', 'Pow',
  'QLinearConv', 'QLinearMatMul', 'QuantizeLinear', 'Range', 'Reciprocal', 'ReduceL2', 'ReduceMax', 'ReduceMean',
  'ReduceMin', 'ReduceProd', 'ReduceSum', 'Relu', 'Reshape', 'Resize', 'Round', 'Selu', 'Shape', 'Sigmoid', 'Sign',
  'Sin', 'Size', 'Slice', 'Softmax', 'Softplus', 'SpaceToDepth', 'Split', 'Sqrt', 'Squeeze', 'Sub', 'Sum', 'Tanh',
  'Tile', 'TopK', 'Transpose', 'Trilu', 'Unsqueeze', 'Where',
  'com.microsoft:MatMulIntegerToFloat',
];

/** The operators and initializers of a graph and of every subgraph in its nodes' attributes. */
function* graphsOf(graph: onnx.IGraphProto | null | undefined): Generator<onnx.IGraphProto> {
  if (!graph) return;
  yield graph;
  for (const node of graph.node ?? []) {
    for (const attribute of node.attribute ?? []) {
      yield* graphsOf(attribute.g);
      for (const sub of attribute.graphs ?? []) yield* graphsOf(sub);
    }
  }
}

function tensorsOf(graph: onnx.IGraphProto): onnx.ITensorProto[] {
  const tensors = [...(graph.initializer ?? [])];
  for (const sparse of graph.sparseInitializer ?? []) {
    if (sparse.values) tensors.push(sparse.values);
    if (sparse.indices) tensors.push(sparse.indices);
  }
  for (const node of graph.node ?? []) {
    for (const attribute of node.attribute ?? []) {
      if (attribute.t) tensors.push(attribute.t);
      tensors.push(...(attribute.tensors ?? []));
    }
  }
  return tensors;
}

const isExternal = (tensor: onnx.ITensorProto) => tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (tensor.externalData?.length ?? 0) > 0;

/**
 * Refuses, as INVALID_MODEL and before onnxruntime sees the file, a model that is not an ONNX
 * protobuf, has more nodes than allowed, uses an operator outside the allow-list, or keeps tensor
 * data in external files (which onnxruntime would open by a path the model names).
 */
export function checkOnnxLimits(bytes: Uint8Array, limits: OnnxLimits): void {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw invalidModel(`the file is not an ONNX model: ${(error as Error).message}`);
  }
  let nodes = 0;
  const refused = new Set<string>();
  for (const graph of graphsOf(model.graph)) {
    nodes += graph.node?.length ?? 0;
    for (const node of graph.node ?? []) {
      const domain = node.domain && node.domain !== 'ai.onnx' ? node.domain : '';
      const op = domain ? `${domain}:${node.opType}` : String(node.opType);
      if (!limits.allowedOps.has(op)) refused.add(op);
    }
    const external = tensorsOf(graph).find(isExternal);
    if (external) {
      throw invalidModel(`tensor "${external.name}" keeps its data in an external file; external data is refused: save the model with all tensors inside the file`);
    }
  }
  if (nodes > limits.maxNodes) throw invalidModel(`the model has ${nodes} nodes, more than the limit of ${limits.maxNodes} (ONNX_MAX_NODES)`);
  if (refused.size > 0) {
    const named = [...refused].slice(0, 10).join(', ');
    throw invalidModel(`operators not allowed: ${named}${refused.size > 10 ? `, and ${refused.size - 10} more` : ''}; ONNX_ALLOWED_OPS lists those a model may use`);
  }
}
