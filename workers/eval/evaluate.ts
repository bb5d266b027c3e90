import type { Preprocessing } from '../common/preprocessing';
import { InputError } from '../data/errors';
import type { ImageDataset } from '../data/types';
import { ClassificationAccumulator, type ClassificationMetrics } from './classification';
import type { OnnxImageModel } from './onnx-model';
import { retrievalMetrics, type EmbeddingSet, type RetrievalMetrics } from './retrieval';

export type EvaluationTask = 'classification' | 'retrieval';
export type EvaluationResult = ClassificationMetrics | RetrievalMetrics;

export type EvaluationStage = 'classify' | 'embed-queries' | 'embed-gallery' | 'rank';

/** Progress of one stage: `done` of `total` items (images, or queries while ranking). */
export interface EvaluationProgress {
  stage: EvaluationStage;
  done: number;
  total: number;
}

export interface EvaluationOptions {
  model: OnnxImageModel;
  pre: Preprocessing;
  task: EvaluationTask;
  /** Labeled images: classified, or used as retrieval queries. */
  data: ImageDataset;
  /** Retrieval gallery; without one, each query is ranked against the other queries (leave-one-out). */
  gallery?: ImageDataset;
  /** Model output to read (default: the first). */
  outputName?: string;
  batchSize?: number;
  /** Evaluate only the first `limit` images of `data` (the gallery is always used whole). */
  limit?: number;
  onProgress?: (progress: EvaluationProgress) => void;
}

/** Evaluates an ONNX model on a dataset; what the CLI, the worker and the tests call. */
export async function evaluateModel(options: EvaluationOptions): Promise<EvaluationResult> {
  const { model, pre, data } = options;
  model.checkInput(pre);
  requireLabels(data, 'dataset');
  if (options.task === 'classification') return classify(options);
  const queries = await embed(model, pre, data, 'embed-queries', options);
  if (!options.gallery) {
    return retrievalMetrics(queries, queries, { leaveOneOut: true, onProgress: rankProgress(queries, options) });
  }
  requireLabels(options.gallery, 'gallery');
  const gallery = await embed(model, pre, options.gallery, 'embed-gallery', { ...options, limit: undefined });
  return retrievalMetrics(queries, gallery, { onProgress: rankProgress(queries, options) });
}

async function classify(options: EvaluationOptions): Promise<ClassificationMetrics> {
  const acc = new ClassificationAccumulator();
  await forEachOutput(options.model, options.pre, options.data, 'classify', options, (out, labels) => {
    acc.add(out.data, out.dims[1], labels);
  });
  return acc.result();
}

async function embed(
  model: OnnxImageModel,
  pre: Preprocessing,
  data: ImageDataset,
  stage: EvaluationStage,
  options: EvaluationOptions,
): Promise<EmbeddingSet> {
  const total = Math.min(data.size, options.limit ?? data.size);
  let vectors = new Float32Array(0);
  const labels = new Int32Array(total);
  let dim = 0;
  let rows = 0;
  await forEachOutput(model, pre, data, stage, options, (out, batchLabels) => {
    if (dim === 0) {
      dim = out.dims[1];
      vectors = new Float32Array(total * dim);
    }
    vectors.set(out.data, rows * dim);
    labels.set(batchLabels, rows);
    rows += batchLabels.length;
  });
  return { vectors, labels, dim };
}

async function forEachOutput(
  model: OnnxImageModel,
  pre: Preprocessing,
  data: ImageDataset,
  stage: EvaluationStage,
  options: EvaluationOptions,
  consume: (out: { data: Float32Array; dims: number[] }, labels: Int32Array) => void,
): Promise<void> {
  const total = Math.min(data.size, options.limit ?? data.size);
  let done = 0;
  options.onProgress?.({ stage, done, total });
  for await (const batch of data.batches({ batchSize: options.batchSize ?? 64, limit: options.limit })) {
    const out = await model.run(batch, pre.inputName, options.outputName);
    if (out.dims[0] !== batch.dims[0]) {
      throw new InputError(`${model.path}: output has ${out.dims[0]} rows for a batch of ${batch.dims[0]} images`);
    }
    consume(out, batch.labels as Int32Array);
    done += batch.dims[0];
    options.onProgress?.({ stage, done, total });
  }
}

function rankProgress(queries: EmbeddingSet, options: EvaluationOptions): (done: number) => void {
  const total = queries.labels.length;
  return (done) => options.onProgress?.({ stage: 'rank', done, total });
}

function requireLabels(data: ImageDataset, what: string): void {
  if (!data.hasLabels) throw new InputError(`${what} ${data.description} has no labels; evaluation needs labeled images`);
}
