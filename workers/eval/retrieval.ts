import { InferenceSession, Tensor } from 'onnxruntime-node';
import { rankingModel } from './ranking-graph';

/**
 * Retrieval metrics of query embeddings against a gallery, ranked by dot product (cosine for
 * L2-normalized embeddings), relevance = same label.
 *  - recall@k: share of queries with at least one relevant item among their k nearest;
 *  - mAP: mean over queries of the average precision over the full ranking.
 */
export interface RetrievalMetrics {
  task: 'retrieval';
  queries: number;
  gallery: number;
  recallAt1: number;
  recallAt5: number;
  mAP: number;
}

export interface EmbeddingSet {
  /** `labels.length` rows of `dim` floats. */
  vectors: Float32Array;
  labels: Int32Array;
  dim: number;
}

/** Queries ranked per graph run; bounds memory at a few [block, gallery] tensors (~0.5 GB at 60k). */
const QUERY_BLOCK = 128;

/**
 * `leaveOneOut`: the gallery is the query set itself and each query's own row is skipped.
 * `onProgress` is called with the number of queries done.
 */
export async function retrievalMetrics(
  queries: EmbeddingSet,
  gallery: EmbeddingSet,
  options: { leaveOneOut?: boolean; onProgress?: (done: number) => void; threads?: number } = {},
): Promise<RetrievalMetrics> {
  if (queries.dim !== gallery.dim) throw new Error(`embedding sizes differ: queries ${queries.dim}, gallery ${gallery.dim}`);
  const nq = queries.labels.length;
  const ng = gallery.labels.length;
  const d = queries.dim;
  const session = await InferenceSession.create(rankingModel(), { intraOpNumThreads: options.threads ?? 0 });
  const galleryFeeds = {
    gallery: new Tensor('float32', gallery.vectors, [ng, d]),
    gallery_labels: new Tensor('int32', gallery.labels, [ng]),
    gallery_positions: new Tensor('int64', BigInt64Array.from({ length: ng }, (_, i) => BigInt(i)), [ng]),
    k: new Tensor('int64', BigInt64Array.from([BigInt(ng)]), [1]),
  };
  let hits1 = 0;
  let hits5 = 0;
  let apSum = 0;
  try {
    for (let q0 = 0; q0 < nq; q0 += QUERY_BLOCK) {
      const block = Math.min(QUERY_BLOCK, nq - q0);
      const self = BigInt64Array.from({ length: block }, (_, i) => BigInt(options.leaveOneOut ? q0 + i : -1));
      const out = await session.run({
        ...galleryFeeds,
        queries: new Tensor('float32', queries.vectors.subarray(q0 * d, (q0 + block) * d), [block, d]),
        query_labels: new Tensor('int32', queries.labels.subarray(q0, q0 + block), [block]),
        query_self: new Tensor('int64', self, [block]),
      });
      const ap = out.ap_sum.data as Float32Array;
      const relevant = out.relevant.data as Float32Array;
      const top5 = out.top5.data as Float32Array;
      const width = top5.length / block;
      for (let b = 0; b < block; b++) {
        if (top5[b * width] > 0) hits1++;
        if (top5.subarray(b * width, (b + 1) * width).some((r) => r > 0)) hits5++;
        if (relevant[b] > 0) apSum += ap[b] / relevant[b];
      }
      options.onProgress?.(q0 + block);
    }
  } finally {
    await session.release();
  }
  const n = Math.max(1, nq);
  return { task: 'retrieval', queries: nq, gallery: ng, recallAt1: hits1 / n, recallAt5: hits5 / n, mAP: apSum / n };
}
