/**
 * Engine benchmarks, printed as tables measured side by side in one run:
 * 1. rtn accuracy at w8a8/w6a6/w4a4/w3a3, simulated (engine) vs exported (onnxruntime), plus
 *    top-1 agreement and max |Δ logit| between the two;
 * 2. onnxruntime latency of the W4A4 exports vs FP32 at batch 1 and 32, sessions timed in
 *    alternation (the per-tensor model in the default integer form and in the standard QDQ form,
 *    the per-token model), at 1 intra-op thread and onnxruntime's default (and the kernels
 *    onnxruntime runs);
 * 3. engine forward throughput (tfjs backend) vs onnxruntime on the FP32 model.
 * Env: BENCH_MODEL (default: the demo classifier, else the tiny fixture), BENCH_DATA (IDX dir;
 * default the full Fashion-MNIST when installed, else the committed 1,000-image sample),
 * BENCH_IMAGES (test images to score, default 10000), BENCH_CALIB (default 128), BENCH_THREADS
 * (comma-separated onnxruntime intra-op thread counts for the latency table, 0 = onnxruntime's
 * choice; default "1,0"), BENCH_LATENCY_SECONDS (timing per thread count and batch, default 12).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { readModelCard } from '../../workers/common/model-card';
import type { Preprocessing } from '../../workers/common/preprocessing';
import { openDataset, type ImageDataset } from '../../workers/data';
import { exportQdq, forward, initBackend, ortKernelCounts, INTEGER_KERNELS, quantizeModel, type ImageModel, type QuantizedModel } from '../../workers/engine';
import { tinyClassifier } from '../engine/fixtures';
import { interleavedMedians } from './interleaved';

const reference = path.join(__dirname, '..', '..', 'deploy', 'demo', 'models', 'vit-fmnist-cls-op17.onnx');
const MODEL = process.env.BENCH_MODEL ?? (fs.existsSync(reference) ? reference : tinyClassifier(17));
const fullData = '/usr/share/datasets/fashion-mnist';
const sampleData = path.join(__dirname, '..', '..', 'deploy', 'demo', 'data', 'fashion-mnist');
const DATA = process.env.BENCH_DATA ?? (fs.existsSync(fullData) ? fullData : sampleData);
const IMAGES = Number(process.env.BENCH_IMAGES ?? 10000);
const CALIB = Number(process.env.BENCH_CALIB ?? 128);
const BATCH = 100;
/** onnxruntime intra-op thread counts for the latency table (0: onnxruntime's default). */
const THREADS = (process.env.BENCH_THREADS ?? '1,0').split(',').map(Number);
/** Seconds of interleaved timing per thread count and batch size. */
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 12);

const fallbackPreprocessing: Preprocessing = {
  inputName: 'input', layout: 'NCHW', height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353],
};

interface Scored { correct: number; total: number; predictions: Int32Array; logits: Float32Array[] }

function argmax(logits: Float32Array, classes: number): Int32Array {
  const out = new Int32Array(logits.length / classes);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
    out[r] = best;
  }
  return out;
}

async function score(data: ImageDataset, run: (images: Float32Array, dims: number[]) => Promise<Float32Array>): Promise<Scored> {
  const predictions: number[] = [];
  const logits: Float32Array[] = [];
  let correct = 0;
  for await (const batch of data.batches({ batchSize: BATCH, limit: IMAGES })) {
    const out = await run(batch.data, batch.dims);
    const predicted = argmax(out, out.length / batch.dims[0]);
    predicted.forEach((p, i) => {
      predictions.push(p);
      if (batch.labels && p === batch.labels[i]) correct++;
    });
    logits.push(out);
  }
  return { correct, total: predictions.length, predictions: Int32Array.from(predictions), logits };
}

function engineRunner(model: ImageModel, quantized?: QuantizedModel): (images: Float32Array, dims: number[]) => Promise<Float32Array> {
  const hooks = quantized?.hooks();
  return async (images, dims) => {
    const out = forward(model, tf.tensor(images, dims), { hooks });
    const values = out.dataSync() as Float32Array;
    out.dispose();
    return values;
  };
}

async function ortRunner(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions = {}): Promise<{ run: (images: Float32Array, dims: number[]) => Promise<Float32Array>; release: () => Promise<void> }> {
  const session = await ort.InferenceSession.create(bytes, options);
  return {
    run: async (images, dims) => {
      const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', images, dims) });
      return result[session.outputNames[0]].data as Float32Array;
    },
    release: () => session.release(),
  };
}

function maxDelta(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((chunk, k) => chunk.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - b[k][i])); }));
  return worst;
}

async function medianMs(fn: () => Promise<unknown>, seconds: number): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  const times: number[] = [];
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until || times.length < 10) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)];
}

const pct = (s: Scored): string => `${((100 * s.correct) / s.total).toFixed(2)}%`;

describe(`engine benchmarks on ${MODEL}`, () => {
  const bytes = fs.readFileSync(MODEL);
  let pre: Preprocessing;
  let test: ImageDataset;
  let calib: ImageDataset;
  let backend: string;

  beforeAll(async () => {
    backend = await initBackend();
    pre = readModelCard(MODEL)?.preprocessing ?? fallbackPreprocessing;
    test = await openDataset({ path: DATA, split: 'test' }, pre);
    calib = await openDataset({ path: DATA, split: 'train' }, pre);
    console.log(`model ${MODEL}; data ${test.description}; engine backend ${backend}; ${Math.min(IMAGES, test.size)} test images, ${CALIB} calibration images`);
  });

  it('accuracy of rtn, simulated vs exported', async () => {
    const rows: string[] = ['| bits | simulated (engine) | exported (ORT) | top-1 agreement | max abs Δ logit |', '|---|---|---|---|---|'];
    const fp = await ortRunner(bytes);
    const fpScore = await score(test, fp.run);
    await fp.release();
    rows.push(`| fp32 | - | ${pct(fpScore)} | - | - |`);
    const configs = [
      ...['w8a8', 'w6a6', 'w4a4', 'w3a3'].map((bits) => ({ bits, label: bits, linearActivations: 'per-tensor' as const })),
      { bits: 'w4a4', label: 'w4a4 per-token', linearActivations: 'per-token' as const },
    ];
    for (const { bits, label, linearActivations } of configs) {
      const result = await quantizeModel({ model: bytes, modelName: MODEL, calibration: calib, bits, method: 'rtn', calibSize: CALIB, linearActivations });
      const simulated = await score(test, engineRunner(result.imageModel, result.quantized));
      const exported = await ortRunner(result.onnx);
      const deployed = await score(test, exported.run);
      await exported.release();
      const agree = simulated.predictions.filter((p, i) => p === deployed.predictions[i]).length / simulated.total;
      rows.push(`| ${label} | ${pct(simulated)} | ${pct(deployed)} | ${(100 * agree).toFixed(2)}% | ${maxDelta(simulated.logits, deployed.logits).toExponential(2)} |`);
      result.quantized.dispose();
    }
    console.log(`rtn accuracy (per-channel weights, per-tensor Linear inputs, per-head attention inputs):\n${rows.join('\n')}`);
  });

  it('onnxruntime latency: W4A4 exports vs FP32', async () => {
    const variants: { label: string; form: 'ort' | 'qdq'; linearActivations: 'per-tensor' | 'per-token'; attentionActivations: 'per-tensor' | 'per-head' }[] = [
      { label: 'W4A4 per-tensor', form: 'ort', linearActivations: 'per-tensor', attentionActivations: 'per-tensor' },
      { label: 'W4A4 per-tensor, standard QDQ form', form: 'qdq', linearActivations: 'per-tensor', attentionActivations: 'per-tensor' },
      { label: 'W4A4 per-token', form: 'ort', linearActivations: 'per-token', attentionActivations: 'per-head' },
    ];
    const models: { label: string; bytes: Uint8Array; integer: string }[] = [];
    for (const { label, form, linearActivations, attentionActivations } of variants) {
      const result = await quantizeModel({ model: bytes, modelName: MODEL, calibration: calib, bits: 'w4a4', method: 'rtn', calibSize: CALIB, linearActivations, attentionActivations });
      const onnx = form === 'ort' ? result.onnx : exportQdq(result.quantized, {}, { form });
      result.quantized.dispose();
      const kernels = await ortKernelCounts(onnx);
      const integer = INTEGER_KERNELS.filter((k) => kernels[k]).map((k) => `${k} x${kernels[k]}`).join(', ') || 'none';
      models.push({ label, bytes: onnx, integer });
    }
    const rows = ['| model | threads | batch | FP32 ms | W4A4 ms | W4A4 / FP32 | target | integer kernels |', '|---|---|---|---|---|---|---|---|'];
    for (const threads of THREADS) {
      const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: threads };
      const fp = await ortRunner(bytes, options);
      const quantized = await Promise.all(models.map((m) => ortRunner(m.bytes, options)));
      for (const [batch, target] of [[1, 0.6], [32, 0.5]] as const) {
        const dims = [batch, pre.channels, pre.height, pre.width];
        const images = new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i));
        // All sessions measured in alternation, so drift in machine load hits them alike.
        const [fpMs, ...qMs] = await interleavedMedians([fp, ...quantized].map((r) => () => r.run(images, dims)), { seconds: LATENCY_SECONDS, reps: batch === 1 ? 20 : 3, warmup: 5, minSamples: 10 });
        models.forEach((m, k) => rows.push(`| ${m.label} | ${threads || 'default'} | ${batch} | ${fpMs.toFixed(3)} | ${qMs[k].toFixed(3)} | ${(qMs[k] / fpMs).toFixed(2)}x | <= ${target}x | ${m.integer} |`));
      }
      await Promise.all([fp, ...quantized].map((r) => r.release()));
    }
    console.log(`onnxruntime latency (median of interleaved runs, graphOptimizationLevel 'all', intra-op threads ${THREADS.map((t) => t || 'default').join(' and ')})\n${rows.join('\n')}`);
  });

  it('forward throughput: engine vs onnxruntime (FP32, batch 32)', async () => {
    const result = await quantizeModel({ model: bytes, modelName: MODEL, calibration: calib, bits: 'w8a8', method: 'rtn', calibSize: 32 });
    const dims = [32, pre.channels, pre.height, pre.width];
    const images = new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i));
    const engineFp = engineRunner(result.imageModel);
    const engineQ = engineRunner(result.imageModel, result.quantized);
    const fp = await ortRunner(bytes);
    const rate = (ms: number): string => (32000 / ms).toFixed(0);
    const ortMs = await medianMs(() => fp.run(images, dims), 3);
    const engineMs = await medianMs(() => engineFp(images, dims), 5);
    const engineQMs = await medianMs(() => engineQ(images, dims), 5);
    await fp.release();
    result.quantized.dispose();
    console.log([
      '| runner | images/s | vs onnxruntime |', '|---|---|---|',
      `| onnxruntime FP32 | ${rate(ortMs)} | 1.00x |`,
      `| engine (${backend}) FP32 | ${rate(engineMs)} | ${(ortMs / engineMs).toFixed(2)}x |`,
      `| engine (${backend}) fake-quant w8a8 | ${rate(engineQMs)} | ${(ortMs / engineQMs).toFixed(2)}x |`,
    ].join('\n'));
  });
});
