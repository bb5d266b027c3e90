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

/** Queries scored together: their rows stay in cache while the gallery streams past once. */
const QUERY_BLOCK = 8;
const K = 5;

/**
 * `leaveOneOut`: the gallery is the query set itself and each query's own row is skipped.
 * `onProgress` is called with the number of queries done.
 */
export function retrievalMetrics(
  queries: EmbeddingSet,
  gallery: EmbeddingSet,
  options: { leaveOneOut?: boolean; onProgress?: (done: number) => void } = {},
): RetrievalMetrics {
  if (queries.dim !== gallery.dim) throw new Error(`embedding sizes differ: queries ${queries.dim}, gallery ${gallery.dim}`);
  const nq = queries.labels.length;
  const ng = gallery.labels.length;
  const relevantPerLabel = countLabels(gallery.labels);
  const scores = new Float32Array(QUERY_BLOCK * ng);
  const relevant = new Float32Array(ng);
  const irrelevant = new Float32Array(ng);
  let hits1 = 0;
  let hits5 = 0;
  let apSum = 0;
  for (let q0 = 0; q0 < nq; q0 += QUERY_BLOCK) {
    const block = Math.min(QUERY_BLOCK, nq - q0);
    scoreBlock(queries, q0, block, gallery, scores);
    for (let b = 0; b < block; b++) {
      const q = q0 + b;
      const row = scores.subarray(b * ng, (b + 1) * ng);
      const self = options.leaveOneOut ? q : -1;
      const label = queries.labels[q];
      const nearest = topKLabels(row, gallery.labels, self);
      if (nearest[0] === label) hits1++;
      if (nearest.includes(label)) hits5++;
      const relevantCount = (relevantPerLabel.get(label) ?? 0) - (self >= 0 ? 1 : 0);
      apSum += averagePrecision(row, gallery.labels, label, self, relevantCount, relevant, irrelevant);
    }
    options.onProgress?.(q0 + block);
  }
  const n = Math.max(1, nq);
  return { task: 'retrieval', queries: nq, gallery: ng, recallAt1: hits1 / n, recallAt5: hits5 / n, mAP: apSum / n };
}

function scoreBlock(queries: EmbeddingSet, q0: number, block: number, gallery: EmbeddingSet, out: Float32Array): void {
  const d = queries.dim;
  const ng = gallery.labels.length;
  const qv = queries.vectors;
  const gv = gallery.vectors;
  for (let b = 0; b < block; b++) {
    const qBase = (q0 + b) * d;
    const outBase = b * ng;
    for (let g = 0; g < ng; g++) {
      const gBase = g * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += qv[qBase + k] * gv[gBase + k];
      out[outBase + g] = s;
    }
  }
}

/** Labels of the K highest-scoring gallery items, best first (insertion into a short list). */
function topKLabels(row: Float32Array, labels: Int32Array, skip: number): number[] {
  const best = new Float32Array(K).fill(-Infinity);
  const bestLabels = new Array<number>(K).fill(-1);
  for (let g = 0; g < row.length; g++) {
    const s = row[g];
    if (s <= best[K - 1] || g === skip) continue;
    let i = K - 1;
    while (i > 0 && best[i - 1] < s) {
      best[i] = best[i - 1];
      bestLabels[i] = bestLabels[i - 1];
      i--;
    }
    best[i] = s;
    bestLabels[i] = labels[g];
  }
  return bestLabels;
}

/**
 * AP = mean over relevant items of (relevant items ranked at or above it) / (its rank). Sorting the
 * relevant and the irrelevant scores apart lets one merge walk count, for each relevant item, the
 * irrelevant items ranked above it.
 */
function averagePrecision(
  row: Float32Array,
  labels: Int32Array,
  label: number,
  skip: number,
  relevantCount: number,
  relevantScratch: Float32Array,
  irrelevantScratch: Float32Array,
): number {
  if (relevantCount <= 0) return 0;
  let nr = 0;
  let ni = 0;
  for (let g = 0; g < row.length; g++) {
    if (g === skip) continue;
    if (labels[g] === label) relevantScratch[nr++] = row[g];
    else irrelevantScratch[ni++] = row[g];
  }
  // Typed-array sort is numeric and ascending; walk both from the top.
  const rel = relevantScratch.subarray(0, nr).sort();
  const irr = irrelevantScratch.subarray(0, ni).sort();
  let above = 0;
  let sum = 0;
  for (let j = 0; j < nr; j++) {
    const s = rel[nr - 1 - j];
    while (above < ni && irr[ni - 1 - above] > s) above++;
    sum += (j + 1) / (j + 1 + above);
  }
  return sum / nr;
}

function countLabels(labels: Int32Array): Map<number, number> {
  const counts = new Map<number, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  return counts;
}
