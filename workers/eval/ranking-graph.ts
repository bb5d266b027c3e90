import { onnx } from 'onnx-proto';

/**
 * A small ONNX graph that ranks a gallery for a block of queries and reduces each ranking to the
 * figures retrieval metrics need. Run by onnxruntime, the similarity product and the full sort per
 * query use native, multi-threaded kernels; a JavaScript loop over 10k x 60k scores is minutes.
 *
 * Inputs:  queries [B, D] f32, gallery [G, D] f32, query_labels [B] i32, gallery_labels [G] i32,
 *          query_self [B] i64 (gallery index of the query itself, excluded; -1 for none),
 *          gallery_positions [G] i64 (0..G-1), k [1] i64 (= G)
 * Outputs: ap_sum [B] (sum of precision at each relevant item), relevant [B] (relevant count),
 *          top5 [B, 5] (1 where the item at that rank is relevant)
 */
const T = onnx.TensorProto.DataType;

function node(opType: string, inputs: string[], outputs: string[], attributes: onnx.IAttributeProto[] = []): onnx.INodeProto {
  return { opType, input: inputs, output: outputs, name: outputs[0], attribute: attributes };
}

function intAttr(name: string, i: number): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function int64s(name: string, values: number[]): onnx.ITensorProto {
  return { name, dataType: T.INT64, dims: [values.length], int64Data: values };
}

/** Serialized ONNX model (opset 13) of the ranking graph. */
export function rankingModel(): Uint8Array {
  const nodes = [
    node('Gemm', ['queries', 'gallery'], ['scores'], [intAttr('transB', 1)]),
    // Exclude the query itself: its score drops to the bottom and it is not counted relevant.
    node('Unsqueeze', ['query_self', 'axis1'], ['self_col']),
    node('Equal', ['self_col', 'gallery_positions'], ['is_self']),
    node('Where', ['is_self', 'lowest', 'scores'], ['masked']),
    node('TopK', ['masked', 'k'], ['ranked_scores', 'ranked_index'], [intAttr('axis', 1), intAttr('largest', 1), intAttr('sorted', 1)]),
    node('Gather', ['gallery_labels', 'ranked_index'], ['ranked_labels'], [intAttr('axis', 0)]),
    node('Unsqueeze', ['query_labels', 'axis1'], ['label_col']),
    node('Equal', ['ranked_labels', 'label_col'], ['same_label']),
    node('Equal', ['ranked_index', 'self_col'], ['ranked_self']),
    node('Not', ['ranked_self'], ['not_self']),
    node('And', ['same_label', 'not_self'], ['is_relevant']),
    node('Cast', ['is_relevant'], ['relevant_f'], [intAttr('to', T.FLOAT)]),
    node('CumSum', ['relevant_f', 'axis1_scalar'], ['hits_so_far']),
    node('Add', ['gallery_positions', 'one'], ['rank_i']),
    node('Cast', ['rank_i'], ['rank'], [intAttr('to', T.FLOAT)]),
    node('Div', ['hits_so_far', 'rank'], ['precision']),
    node('Mul', ['precision', 'relevant_f'], ['precision_at_hits']),
    node('ReduceSum', ['precision_at_hits', 'axis1'], ['ap_sum'], [intAttr('keepdims', 0)]),
    node('ReduceSum', ['relevant_f', 'axis1'], ['relevant'], [intAttr('keepdims', 0)]),
    node('Slice', ['relevant_f', 'zero', 'five', 'axis1'], ['top5']),
  ];
  const graph: onnx.IGraphProto = {
    name: 'retrieval_ranking',
    node: nodes,
    initializer: [
      int64s('axis1', [1]),
      { name: 'axis1_scalar', dataType: T.INT64, dims: [], int64Data: [1] },
      { name: 'one', dataType: T.INT64, dims: [], int64Data: [1] },
      int64s('zero', [0]),
      int64s('five', [5]),
      { name: 'lowest', dataType: T.FLOAT, dims: [], floatData: [-3.4e38] },
    ],
    input: [
      valueInfo('queries', T.FLOAT, ['B', 'D']),
      valueInfo('gallery', T.FLOAT, ['G', 'D']),
      valueInfo('query_labels', T.INT32, ['B']),
      valueInfo('gallery_labels', T.INT32, ['G']),
      valueInfo('query_self', T.INT64, ['B']),
      valueInfo('gallery_positions', T.INT64, ['G']),
      valueInfo('k', T.INT64, [1]),
    ],
    output: [valueInfo('ap_sum', T.FLOAT, ['B']), valueInfo('relevant', T.FLOAT, ['B']), valueInfo('top5', T.FLOAT, ['B', 'min(5, G)'])],
  };
  return onnx.ModelProto.encode({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], producerName: 'fimaq-eval', graph }).finish();
}
