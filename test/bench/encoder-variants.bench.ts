/**
 * What the rollout guardrails of retrieval models see for the demo encoder's variants
 * (`npm run bench:encoder-variants`): per Fashion-MNIST test query, the cosine of the variant's
 * embedding and FP32's, overlap@10 of their nearest neighbours in a gallery of train images (each
 * embeds the gallery itself, as the gateway does), and each one's recall@10 (a same-class item
 * among the 10 nearest). The defaults of minOverlapAtK, minCosine and maxRecallDrop are chosen
 * from these figures (README, Canary rollouts).
 * Environment: BENCH_GALLERY (train images, default 1000), BENCH_QUERIES (test images, default 1000).
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import * as ort from 'onnxruntime-node';
import { corruptedWeights } from '../rollouts/support/rollout-fixtures';
import { DEMO_ENCODER, FASHION_MNIST_SAMPLE, quantizedEncoder } from '../rollouts/support/encoder-variants';

const GALLERY = Number(process.env.BENCH_GALLERY ?? 1000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 1000);
const K = 10;

function idx(file: string): Buffer {
  return zlib.gunzipSync(fs.readFileSync(path.join(FASHION_MNIST_SAMPLE, file)));
}

function images(split: 'train' | 't10k', count: number): { tensor: Float32Array; labels: Uint8Array; count: number } {
  const raw = idx(`${split}-images-idx3-ubyte.gz`);
  const n = Math.min(count, raw.readUInt32BE(4));
  const tensor = Float32Array.from(raw.subarray(16, 16 + n * 784), (p) => (p / 255 - 0.286) / 0.353);
  return { tensor, labels: idx(`${split}-labels-idx1-ubyte.gz`).subarray(8, 8 + n), count: n };
}

async function embed(model: Uint8Array, data: { tensor: Float32Array; count: number }): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(model);
  try {
    const rows: Float32Array[] = [];
    for (let start = 0; start < data.count; start += 100) {
      const n = Math.min(100, data.count - start);
      const { embedding } = await session.run({ input: new ort.Tensor('float32', data.tensor.subarray(start * 784, (start + n) * 784), [n, 1, 28, 28]) });
      const flat = embedding.data as Float32Array;
      const d = flat.length / n;
      for (let i = 0; i < n; i++) rows.push(flat.slice(i * d, (i + 1) * d));
    }
    return rows;
  } finally {
    await session.release();
  }
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);
const cosine = (a: Float32Array, b: Float32Array) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
const nearest = (query: Float32Array, gallery: Float32Array[]) =>
  gallery.map((row, i) => ({ i, score: cosine(row, query) })).sort((a, b) => b.score - a.score).slice(0, K).map((n) => n.i);

interface Summary {
  mean: number;
  sd: number;
  p05: number;
}
function summary(values: number[]): Summary {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1));
  return { mean, sd, p05: [...values].sort((a, b) => a - b)[Math.floor(0.05 * values.length)] };
}

async function main(): Promise<void> {
  const gallery = images('train', GALLERY);
  const queries = images('t10k', QUERIES);
  const fp = fs.readFileSync(DEMO_ENCODER);
  const variants: Array<[string, Uint8Array]> = [
    ['rtn W8A8', await quantizedEncoder('w8a8')],
    ['rtn W4A4', await quantizedEncoder('w4a4')],
    ['corrupted weights', corruptedWeights(DEMO_ENCODER)],
  ];
  const [fpGallery, fpQueries] = [await embed(fp, gallery), await embed(fp, queries)];
  const recall = (q: Float32Array[], g: Float32Array[]) => q.map((row, i) => (nearest(row, g).some((j) => gallery.labels[j] === queries.labels[i]) ? 1 : 0));
  const fpRecall = recall(fpQueries, fpGallery);
  const fpNeighbours = fpQueries.map((row) => nearest(row, fpGallery));
  const f = (x: number) => x.toFixed(4);
  console.log(`demo encoder variants vs FP32: ${queries.count} test queries, gallery of ${gallery.count} train images, k = ${K}; FP32 recall@${K} ${f(summary(fpRecall).mean)}`);
  console.log(`| variant | overlap@${K} mean | sd | 5th pct | cosine mean | sd | 5th pct | recall@${K} | recall drop |`);
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const [name, bytes] of variants) {
    const [vGallery, vQueries] = [await embed(bytes, gallery), await embed(bytes, queries)];
    const overlap = summary(vQueries.map((row, i) => nearest(row, vGallery).filter((j) => fpNeighbours[i].includes(j)).length / K));
    const cos = summary(vQueries.map((row, i) => cosine(row, fpQueries[i])));
    const r = summary(recall(vQueries, vGallery)).mean;
    console.log(`| ${name} | ${f(overlap.mean)} | ${f(overlap.sd)} | ${f(overlap.p05)} | ${f(cos.mean)} | ${f(cos.sd)} | ${f(cos.p05)} | ${f(r)} | ${f(summary(fpRecall).mean - r)} |`);
  }
}

void main();
