/**
 * W4A4 vs FP32 at ViT-S size (`npm run bench:engine`, or `-- -t ViT-S`): a synthetic ViT of
 * ViT-S/16's shape (224x224 single-channel input, 16x16 patches: 197 tokens, width 384, 6 heads,
 * MLP 1536, 12 blocks, 1000 classes, seeded random weights; test/bench/synthetic-vit.ts), rtn
 * W4A4 with per-tensor activations in the integer form (MatMulIntegerToFloat), onnxruntime
 * latency at batch 1 and 8, at 1 intra-op thread and onnxruntime's default, sessions timed in
 * alternation; and the weights' size on disk: FP32, the W4A4 export (int8 codes), and the same
 * export with its 4-bit codes packed two to a byte (INT4 initializers cast to int8, opset 21),
 * timed too when onnxruntime runs it with the same outputs.
 * Env: BENCH_VITS_THREADS (default "1,0"; 0 = onnxruntime's choice), BENCH_VITS_SECONDS (timing
 * per thread count and batch, default 20), BENCH_VITS_CALIB (calibration images, default 8).
 */
import * as ort from 'onnxruntime-node';
import { initBackend, ortKernelCounts, INTEGER_KERNELS, quantizeModel } from '../../workers/engine';
import { decodeModel, encodeModel, onnx } from '../../workers/engine/onnx/proto';
import { maxAbsDiff, syntheticCalibration, syntheticImages } from '../engine/fixtures';
import { syntheticVit, type VitShape } from './synthetic-vit';
import { interleavedMedians } from './interleaved';

const VIT_S: VitShape = { imageSize: 224, patch: 16, dim: 384, heads: 6, mlp: 1536, depth: 12, classes: 1000 };
const THREADS = (process.env.BENCH_VITS_THREADS ?? '1,0').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_VITS_SECONDS ?? 20);
const CALIB = Number(process.env.BENCH_VITS_CALIB ?? 8);
const CHW = [1, VIT_S.imageSize, VIT_S.imageSize];
/** TensorProto.DataType INT4 (ONNX IR 10), newer than onnx-proto's enum. */
const INT4 = 22;

/**
 * The export with every 4-bit weight code tensor (int8 in [-8, 7] feeding an integer product)
 * stored as INT4, two codes a byte, and cast back to int8 by a Cast that onnxruntime folds at load.
 */
function packFourBitWeights(bytes: Uint8Array): { bytes: Uint8Array; packed: number } {
  const model = decodeModel(bytes);
  const graph = model.graph as onnx.GraphProto;
  const nodes = graph.node;
  const integerProductInputs = new Set(nodes.filter((n) => n.opType === 'MatMulIntegerToFloat' || n.opType === 'MatMulInteger').map((n) => n.input?.[1]));
  const casts: onnx.INodeProto[] = [];
  for (const tensor of graph.initializer) {
    const name = tensor.name ?? '';
    if (tensor.dataType !== onnx.TensorProto.DataType.INT8 || !integerProductInputs.has(name)) continue;
    const raw = tensor.rawData ?? new Uint8Array(0);
    const codes = raw.length ? new Int8Array(raw.buffer, raw.byteOffset, raw.length) : Int8Array.from(tensor.int32Data ?? []);
    if (codes.some((c) => c < -8 || c > 7)) continue;
    const nibbles = new Uint8Array(Math.ceil(codes.length / 2));
    codes.forEach((c, i) => { nibbles[i >> 1] |= (c & 0x0f) << (4 * (i & 1)); });
    tensor.name = `${name}_int4`;
    tensor.dataType = INT4;
    tensor.rawData = nibbles;
    tensor.int32Data = [];
    casts.push({ name: `${name}_unpack`, opType: 'Cast', input: [tensor.name], output: [name], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: onnx.TensorProto.DataType.INT8 }] });
  }
  graph.node = [...casts.map((c) => onnx.NodeProto.create(c)), ...nodes];
  model.irVersion = Math.max(Number(model.irVersion), 10);
  for (const opset of model.opsetImport) if (!opset.domain) opset.version = Math.max(Number(opset.version), 21);
  return { bytes: encodeModel(model), packed: casts.length };
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

describe(`engine at ViT-S size: ${(VIT_S.imageSize / VIT_S.patch) ** 2 + 1} tokens, width ${VIT_S.dim}, ${VIT_S.depth} blocks`, () => {
  it('W4A4 (integer form) vs FP32: onnxruntime latency and weights on disk', async () => {
    await initBackend();
    const fp32 = syntheticVit(VIT_S);
    const result = await quantizeModel({
      model: fp32, modelName: 'synthetic ViT-S', calibration: syntheticCalibration(CALIB, CHW), bits: 'w4a4', method: 'rtn',
      calibSize: CALIB, batchSize: 4, linearActivations: 'per-tensor', attentionActivations: 'per-tensor',
    });
    result.quantized.dispose();
    const w4a4 = result.onnx;
    const kernels = await ortKernelCounts(w4a4);
    const integer = INTEGER_KERNELS.filter((k) => kernels[k]).map((k) => `${k} x${kernels[k]}`).join(', ') || 'none';

    const packed = packFourBitWeights(w4a4);
    const probe = syntheticImages(2, CHW, 3);
    const outputsOf = async (bytes: Uint8Array): Promise<Float32Array> => {
      const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
      const out = await session.run({ input: new ort.Tensor('float32', probe, [2, ...CHW]) });
      await session.release();
      return out.logits.data as Float32Array;
    };
    let packedRuns: string;
    try {
      const delta = maxAbsDiff(await outputsOf(w4a4), await outputsOf(packed.bytes));
      packedRuns = delta === 0 ? 'runs, outputs identical' : `runs, max |Δ logit| ${delta.toExponential(2)}`;
    } catch (err) {
      packedRuns = `does not load: ${(err as Error).message.split('\n')[0]}`;
    }
    console.log([
      `weights on disk (whole .onnx files), ${CALIB} synthetic calibration images, integer kernels: ${integer}`,
      '| model | bytes | vs FP32 |', '|---|---|---|',
      `| FP32 | ${mib(fp32.length)} | 1.00x |`,
      `| W4A4 export (int8 codes) | ${mib(w4a4.length)} | ${(w4a4.length / fp32.length).toFixed(3)}x |`,
      `| W4A4, ${packed.packed} code tensors packed as INT4 (${packedRuns}) | ${mib(packed.bytes.length)} | ${(packed.bytes.length / fp32.length).toFixed(3)}x |`,
    ].join('\n'));

    const candidates = [{ label: 'W4A4', bytes: w4a4 }, ...(packedRuns.startsWith('runs') ? [{ label: 'W4A4 INT4-packed', bytes: packed.bytes }] : [])];
    const rows = ['| model | threads | batch | FP32 ms | W4A4 ms | W4A4 / FP32 | target |', '|---|---|---|---|---|---|---|'];
    for (const threads of THREADS) {
      const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: threads };
      const sessions = await Promise.all([fp32, ...candidates.map((c) => c.bytes)].map((b) => ort.InferenceSession.create(b, options)));
      for (const [batch, target] of [[1, 0.6], [8, 0.5]] as const) {
        const feeds = { input: new ort.Tensor('float32', syntheticImages(batch, CHW, 5), [batch, ...CHW]) };
        const [fpMs, ...qMs] = await interleavedMedians(sessions.map((s) => () => s.run(feeds)), { seconds: SECONDS, reps: batch === 1 ? 4 : 1, warmup: 3, minSamples: 5 });
        candidates.forEach((c, k) => rows.push(`| ${c.label} | ${threads || 'default'} | ${batch} | ${fpMs.toFixed(1)} | ${qMs[k].toFixed(1)} | ${(qMs[k] / fpMs).toFixed(2)}x | <= ${target}x |`));
      }
      await Promise.all(sessions.map((s) => s.release()));
    }
    console.log(`onnxruntime latency at ViT-S size (median of interleaved runs, graphOptimizationLevel 'all')\n${rows.join('\n')}`);
  });
});
