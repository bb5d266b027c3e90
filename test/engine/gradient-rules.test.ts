import * as tf from '@tensorflow/tfjs';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { onnxNode } from '../../workers/engine/autodiff/differentiate';
import { GRADIENT_RULES, NoGradientRule } from '../../workers/engine/autodiff/gradient-rules';
import { Tape } from '../../workers/engine/autodiff/tape';
import { initBackend } from '../../workers/engine/backend';
import { AttributeValue, GraphNode } from '../../workers/engine/onnx/graph';
import { ModelBuilder } from '../../workers/engine/onnx/model-builder';
import { onnx } from '../../workers/engine/onnx/proto';
import { HostTensor } from '../../workers/engine/onnx/tensor';
import { kernelFor } from '../../workers/engine/ops';

const DT = onnx.TensorProto.DataType;

beforeAll(async () => {
  await initBackend();
});

/** An op input: a differentiated float tensor, or a constant (float, int64 or bool). */
type InputSpec = { shape: number[]; positive?: boolean } | { constant: HostTensor };

interface Case {
  op: string;
  inputs: InputSpec[];
  attributes?: Record<string, AttributeValue>;
  outputs?: number;
}

const ints = (values: number[]): InputSpec => ({ constant: { dtype: 'int32', shape: [values.length], data: Int32Array.from(values) } });
const floats = (shape: number[], values: number[]): InputSpec => ({ constant: { dtype: 'float32', shape, data: Float32Array.from(values) } });
const scalarIndex = (i: number): InputSpec => ({ constant: { dtype: 'int32', shape: [], data: Int32Array.of(i) } });

/** Deterministic values in [-1, 1) (or [0.5, 1.5) when positive). */
function valuesFor(shape: number[], seed: number, positive = false): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: count }, (_, i) => {
    const v = Math.sin(seed * 12.9898 + i * 78.233) * 43758.5453;
    const unit = v - Math.floor(v);
    return positive ? 0.5 + unit : 2 * unit - 1;
  });
}

const CASES: Case[] = [
  { op: 'Add', inputs: [{ shape: [2, 3, 4] }, { shape: [4] }] },
  { op: 'Sub', inputs: [{ shape: [2, 3, 4] }, { shape: [2, 1, 4] }] },
  { op: 'Mul', inputs: [{ shape: [2, 3, 4] }, { shape: [1, 3, 1] }] },
  { op: 'Div', inputs: [{ shape: [2, 3, 4] }, { shape: [3, 1], positive: true }] },
  { op: 'Neg', inputs: [{ shape: [2, 5] }] },
  { op: 'Abs', inputs: [{ shape: [2, 5] }] },
  { op: 'Sqrt', inputs: [{ shape: [2, 5], positive: true }] },
  { op: 'Exp', inputs: [{ shape: [2, 5] }] },
  { op: 'Sigmoid', inputs: [{ shape: [2, 5] }] },
  { op: 'Tanh', inputs: [{ shape: [2, 5] }] },
  { op: 'Relu', inputs: [{ shape: [2, 5] }] },
  { op: 'Erf', inputs: [{ shape: [2, 5] }] },
  { op: 'Pow', inputs: [{ shape: [2, 5], positive: true }, floats([], [3])] },
  { op: 'Max', inputs: [{ shape: [2, 3] }, { shape: [2, 3] }] },
  { op: 'Clip', inputs: [{ shape: [2, 5] }, floats([], [-0.5]), floats([], [0.5])] },
  { op: 'Where', inputs: [{ constant: { dtype: 'bool', shape: [2, 3], data: Uint8Array.of(1, 0, 1, 0, 0, 1) } }, { shape: [2, 3] }, { shape: [3] }] },
  { op: 'MatMul', inputs: [{ shape: [2, 4, 3, 5] }, { shape: [5, 6] }] },
  { op: 'MatMul', inputs: [{ shape: [2, 3, 4, 5] }, { shape: [2, 3, 5, 6] }] },
  { op: 'MatMul', inputs: [{ shape: [4, 5] }, { shape: [2, 5, 3] }] },
  ...[0, 1].flatMap((transA) => [0, 1].map((transB): Case => ({
    op: 'Gemm',
    inputs: [{ shape: transA ? [5, 4] : [4, 5] }, { shape: transB ? [6, 5] : [5, 6] }, { shape: [6] }],
    attributes: { transA, transB, alpha: 0.5, beta: 2 },
  }))),
  { op: 'Conv', inputs: [{ shape: [2, 3, 8, 8] }, { shape: [4, 3, 4, 4] }, { shape: [4] }], attributes: { kernel_shape: [4, 4], strides: [4, 4] } },
  { op: 'LayerNormalization', inputs: [{ shape: [2, 3, 8] }, { shape: [8] }, { shape: [8] }], attributes: { axis: -1, epsilon: 1e-5 } },
  { op: 'Softmax', inputs: [{ shape: [2, 3, 5] }], attributes: { axis: -1 } },
  { op: 'Softmax', inputs: [{ shape: [2, 3, 5] }], attributes: { axis: 1 } },
  { op: 'LogSoftmax', inputs: [{ shape: [2, 3, 5] }], attributes: { axis: -1 } },
  { op: 'Gather', inputs: [{ shape: [2, 4, 3] }, scalarIndex(2)], attributes: { axis: 1 } },
  { op: 'Concat', inputs: [{ shape: [2, 3, 4] }, { shape: [2, 1, 4] }], attributes: { axis: 1 } },
  { op: 'Split', inputs: [{ shape: [2, 3, 6] }], attributes: { axis: 2 }, outputs: 2 },
  { op: 'Reshape', inputs: [{ shape: [2, 3, 4] }, ints([4, 6])] },
  { op: 'Transpose', inputs: [{ shape: [2, 3, 4] }], attributes: { perm: [2, 0, 1] } },
  { op: 'Unsqueeze', inputs: [{ shape: [2, 3] }, ints([1])] },
  { op: 'Squeeze', inputs: [{ shape: [2, 1, 3] }, ints([1])] },
  { op: 'Flatten', inputs: [{ shape: [2, 3, 4] }], attributes: { axis: 1 } },
  { op: 'Identity', inputs: [{ shape: [2, 3] }] },
  { op: 'Expand', inputs: [{ shape: [3, 1] }, ints([2, 3, 4])] },
  { op: 'ReduceMean', inputs: [{ shape: [2, 3, 4] }], attributes: { axes: [1], keepdims: 0 } },
  { op: 'ReduceSum', inputs: [{ shape: [2, 3, 4] }, ints([-1])], attributes: { keepdims: 1 } },
  { op: 'ReduceL2', inputs: [{ shape: [2, 3, 4] }], attributes: { axes: [-1], keepdims: 1 } },
  { op: 'ReduceL2', inputs: [{ shape: [2, 3, 4] }], attributes: { axes: [0, 2], keepdims: 0 } },
];

/** Gradients of Σₖ Σ(yₖ ⊙ rₖ) by the tfjs kernel's autodiff and by the rule's ONNX graph on onnxruntime. */
async function bothGradients(spec: Case): Promise<{ expected: Float32Array[]; actual: Float32Array[] }> {
  const names = spec.inputs.map((_, i) => `in${i}`);
  const outputs = Array.from({ length: spec.outputs ?? 1 }, (_, k) => `out${k}`);
  const node: GraphNode = { name: spec.op, opType: spec.op, domain: '', inputs: names, outputs, attributes: new Map(Object.entries(spec.attributes ?? {})) };
  const host = spec.inputs.map((input, i) => ('constant' in input ? input.constant : { dtype: 'float32' as const, shape: input.shape, data: valuesFor(input.shape, i + 1, input.positive) }));
  const wanted = spec.inputs.map((input) => !('constant' in input));
  const kernel = kernelFor(node);
  const run = (xs: tf.Tensor[]): tf.Tensor[] => {
    let k = 0;
    // Optional outputs (LayerNormalization's mean and inverse std) are not part of the loss.
    return kernel(host.map((h, i) => (wanted[i] ? xs[k++] : tf.tensor(h.data, h.shape, h.dtype))), { node, opset: 17 }).slice(0, outputs.length);
  };
  const outputShapes = tf.tidy(() => run(host.filter((_, i) => wanted[i]).map((h) => tf.tensor(h.data, h.shape))).map((t) => t.shape));
  const weights = outputShapes.map((shape, k) => valuesFor(shape, 100 + k));
  const expected = tf.tidy(() => {
    const loss = (...xs: tf.Tensor[]): tf.Scalar => tf.addN(run(xs).map((y, k) => tf.sum(tf.mul(y, tf.tensor(weights[k], y.shape))))) as tf.Scalar;
    return tf.grads(loss)(host.filter((_, i) => wanted[i]).map((h) => tf.tensor(h.data, h.shape))).map((g) => Float32Array.from(g.dataSync()));
  });

  const b = new ModelBuilder(17);
  const tape = new Tape(b);
  host.forEach((h, i) => {
    if (wanted[i]) {
      b.input(names[i], h.shape);
      return;
    }
    b.constant(names[i], h.dtype === 'float32' ? DT.FLOAT : h.dtype === 'bool' ? DT.BOOL : DT.INT64, h.shape, h.data);
    tape.knowConstant(names[i], h);
  });
  tape.push(onnxNode(node, outputShapes, tape.constantOf));
  const terms = outputs.map((o, k) => tape.op('ReduceSum', [tape.op('Mul', [o, b.floats('r', outputShapes[k], weights[k])], outputShapes[k])], [], { keepdims: 0 }));
  const loss = terms.reduce((sum, t) => tape.op('Add', [sum, t], []));
  const gradients = tape.differentiate(loss, names.filter((_, i) => wanted[i]));
  gradients.forEach((g) => b.output(g));
  const session = await InferenceSession.create(b.toBytes(spec.op));
  const feeds: Record<string, Tensor> = {};
  host.forEach((h, i) => {
    if (wanted[i]) feeds[names[i]] = new Tensor('float32', h.data as Float32Array, h.shape);
  });
  const result = await session.run(feeds);
  await session.release();
  return { expected, actual: gradients.map((g) => result[g].data as Float32Array) };
}

describe('gradient rules (ONNX graphs on onnxruntime) against tfjs autodiff of the engine kernels', () => {
  it.each(CASES.map((c) => [`${c.op} ${JSON.stringify(c.attributes ?? {})} ${c.inputs.map((i) => ('shape' in i ? `[${i.shape}]` : 'const')).join(' ')}`, c] as const))(
    '%s', async (_, spec) => {
      const { expected, actual } = await bothGradients(spec);
      expect(actual).toHaveLength(expected.length);
      expected.forEach((e, i) => {
        expect(actual[i]).toHaveLength(e.length);
        const scale = Math.max(...Array.from(e, Math.abs), 1e-6);
        const worst = Math.max(...Array.from(e, (v, j) => Math.abs(v - actual[i][j])));
        expect(worst / scale).toBeLessThan(1e-5);
      });
    },
  );

  it('covers every op that has a rule', () => {
    expect(new Set(CASES.map((c) => c.op))).toEqual(new Set(Object.keys(GRADIENT_RULES).filter((op) => op !== 'Dropout')));
  });

  it('joins the gradients of scalar-index Gathers that cover an axis (the q, k, v split) with one Concat, and zero-pads partial ones', async () => {
    for (const indices of [[0, 1, 2], [2, 0]]) {
      const b = new ModelBuilder(17);
      const tape = new Tape(b);
      const x = valuesFor([3, 2, 4], 1);
      b.input('x', [3, 2, 4]);
      const terms = indices.map((index, k) => {
        const indexName = `index${k}`;
        const value: HostTensor = { dtype: 'int32', shape: [], data: Int32Array.of(index) };
        b.constant(indexName, DT.INT64, [], value.data);
        tape.knowConstant(indexName, value);
        const gathered = `gathered${k}`;
        tape.push(onnxNode({ name: gathered, opType: 'Gather', domain: '', inputs: ['x', indexName], outputs: [gathered], attributes: new Map([['axis', 0]]) }, [[2, 4]], tape.constantOf));
        return tape.op('ReduceSum', [tape.op('Mul', [gathered, b.floats('w', [2, 4], valuesFor([2, 4], 10 + k))], [2, 4])], [], { keepdims: 0 });
      });
      const [gradient] = tape.differentiate(terms.reduce((sum, t) => tape.op('Add', [sum, t], [])), ['x']);
      b.output(gradient);
      const bytes = b.toBytes('slices');
      const ops = onnx.ModelProto.decode(bytes).graph?.node?.map((n) => n.opType) ?? [];
      expect(ops.includes('Pad')).toBe(indices.length < 3);
      expect(ops.includes('Concat')).toBe(indices.length === 3);
      const session = await InferenceSession.create(bytes);
      const result = (await session.run({ x: new Tensor('float32', x, [3, 2, 4]) }))[gradient].data as Float32Array;
      await session.release();
      const expected = new Float32Array(24);
      indices.forEach((index, k) => valuesFor([2, 4], 10 + k).forEach((w, j) => { expected[index * 8 + j] += w; }));
      expect(Array.from(result)).toEqual(Array.from(expected).map((v) => expect.closeTo(v, 6)));
    }
  });

  it('refuses what it cannot differentiate with NoGradientRule: unknown ops, overlapping convolutions', () => {
    const b = new ModelBuilder(17);
    const tape = new Tape(b);
    const node = (opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}): GraphNode => ({ name: opType, opType, domain: '', inputs, outputs: ['y'], attributes: new Map(Object.entries(attributes)) });
    expect(() => onnxNode(node('Cos', ['x']), [[2]], tape.constantOf)).toThrow(NoGradientRule);
    b.input('x', [1, 1, 8, 8]);
    b.input('w', [2, 1, 3, 3]);
    tape.push(onnxNode(node('Conv', ['x', 'w'], { kernel_shape: [3, 3], strides: [1, 1] }), [[1, 2, 6, 6]], tape.constantOf));
    const loss = tape.op('ReduceSum', ['y'], [], { keepdims: 0 });
    expect(() => tape.differentiate(loss, ['w'])).toThrow(/only a patch embedding/);
  });
});
