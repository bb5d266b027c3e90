/**
 * Evaluation of a quantization result side by side: the full-precision model and the exported
 * QDQ model on onnxruntime, the simulated model on the engine. Classification: top-1/top-5.
 * Retrieval (docs/fimaq.md): recall@1/5 of each model's neighbours against the full-precision model's
 * nearest neighbour, and the mean cosine between full-precision and quantized embeddings.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageBatch, ImageDataset } from '../data/types';
import { ClassificationAccumulator, type ClassificationMetrics } from '../eval/classification';
import type { OnnxImageModel } from '../eval/onnx-model';
import { forward, type ImageModel } from '../engine/image-model';
import type { QuantizedModel } from '../engine/simulation';
import type { LogitsTask } from './options';

/** Model outputs of one batch, [rows × width]. */
type Runner = (batch: ImageBatch) => Promise<Float32Array>;

export interface FidelityMetrics {
  task: 'retrieval';
  images: number;
  /** Fraction of queries whose full-precision nearest neighbour is in the model's top 1 / top 5. */
  recallAt1: number;
  recallAt5: number;
  /** Mean cosine similarity between the full-precision and this model's embeddings of the same image. */
  meanCosine: number;
}

export type QualityMetrics = ClassificationMetrics | FidelityMetrics;

export interface QuantizedEvaluation {
  data: string;
  fp: QualityMetrics;
  simulated: QualityMetrics;
  exported: QualityMetrics;
  seconds: number;
}

export interface EvaluationInputs {
  task: LogitsTask;
  data: ImageDataset;
  fp: OnnxImageModel;
  exported: OnnxImageModel;
  imageModel: ImageModel;
  quantized: QuantizedModel;
  inputName: string;
  batchSize?: number;
  /** Evaluate only the first images of `data`. */
  limit?: number;
}

function simulatedRunner(imageModel: ImageModel, quantized: QuantizedModel): Runner {
  const hooks = quantized.hooks();
  return async (batch) => {
    const output = forward(imageModel, tf.tensor(batch.data, batch.dims), { hooks });
    const values = (await output.data()) as Float32Array;
    output.dispose();
    return values;
  };
}

function onnxRunner(model: OnnxImageModel, inputName: string): Runner {
  return async (batch) => (await model.run(batch, inputName)).data;
}

async function outputsOf(runners: Runner[], data: ImageDataset, batchSize: number, limit?: number): Promise<{ outputs: Float32Array[][]; labels: Int32Array[]; rows: number[] }> {
  const outputs: Float32Array[][] = runners.map(() => []);
  const labels: Int32Array[] = [];
  const rows: number[] = [];
  for await (const batch of data.batches({ batchSize, limit })) {
    for (const [i, run] of runners.entries()) outputs[i].push(await run(batch));
    labels.push(batch.labels ?? new Int32Array(batch.dims[0]));
    rows.push(batch.dims[0]);
  }
  return { outputs, labels, rows };
}

function classification(outputs: Float32Array[], labels: Int32Array[], rows: number[]): ClassificationMetrics {
  const accumulator = new ClassificationAccumulator();
  outputs.forEach((values, i) => accumulator.add(values, values.length / rows[i], labels[i]));
  return accumulator.result();
}

function joinRows(parts: Float32Array[], count: number): tf.Tensor2D {
  const joined = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    joined.set(p, offset);
    offset += p.length;
  }
  return tf.tensor2d(joined, [count, joined.length / count]);
}

/** Recall@k of `model` embeddings against the FP nearest neighbour (leave-one-out over the set), and the mean cosine. */
function fidelity(fpParts: Float32Array[], modelParts: Float32Array[], count: number): FidelityMetrics {
  const [recall1, recall5, cosine] = tf.tidy(() => {
    const normalize = (t: tf.Tensor): tf.Tensor => tf.div(t, tf.maximum(tf.norm(t, 2, 1, true), 1e-12));
    const fp = normalize(joinRows(fpParts, count));
    const model = normalize(joinRows(modelParts, count));
    const self = tf.mul(tf.eye(count), 1e9);
    const fpNearest = tf.argMax(tf.sub(tf.matMul(fp, fp, false, true), self), 1);
    const { indices } = tf.topk(tf.sub(tf.matMul(model, model, false, true), self), Math.min(5, count - 1));
    const hits = tf.cast(tf.equal(indices, tf.expandDims(fpNearest, 1)), 'float32');
    return [tf.mean(tf.slice(hits, [0, 0], [-1, 1])), tf.mean(tf.sum(hits, 1)), tf.mean(tf.sum(tf.mul(fp, model), 1))];
  }).map((t) => {
    const v = t.dataSync()[0];
    t.dispose();
    return v;
  });
  return { task: 'retrieval', images: count, recallAt1: recall1, recallAt5: recall5, meanCosine: cosine };
}

/** Retrieval ranks every query against every other; beyond this many images the set is cut (the matrix grows quadratically). */
const RETRIEVAL_IMAGES = 2000;

export async function evaluateQuantized(inputs: EvaluationInputs): Promise<QuantizedEvaluation> {
  const started = performance.now();
  const runners = [onnxRunner(inputs.fp, inputs.inputName), simulatedRunner(inputs.imageModel, inputs.quantized), onnxRunner(inputs.exported, inputs.inputName)];
  const limit = inputs.task === 'retrieval' ? Math.min(inputs.limit ?? RETRIEVAL_IMAGES, RETRIEVAL_IMAGES) : inputs.limit;
  const { outputs, labels, rows } = await outputsOf(runners, inputs.data, inputs.batchSize ?? 250, limit);
  const count = rows.reduce((a, b) => a + b, 0);
  const [fp, simulated, exported] = inputs.task === 'classification'
    ? outputs.map((o) => classification(o, labels, rows))
    : outputs.map((o) => fidelity(outputs[0], o, count));
  return { data: inputs.data.description, fp, simulated, exported, seconds: (performance.now() - started) / 1000 };
}
