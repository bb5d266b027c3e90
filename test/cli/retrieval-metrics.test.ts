import { retrievalMetrics, type EmbeddingSet } from '../../workers/eval';

/** Deterministic pseudo-random numbers (LCG), so failures reproduce. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

function embeddings(n: number, dim: number, classes: number, seed: number): EmbeddingSet {
  const next = random(seed);
  const labels = Int32Array.from({ length: n }, () => Math.floor((next() + 0.5) * classes));
  // Each vector leans towards its class axis, so the metrics are neither 0 nor 1.
  const vectors = Float32Array.from({ length: n * dim }, (_, i) => next() + (i % dim === labels[Math.floor(i / dim)] ? 0.4 : 0));
  return { vectors, labels, dim };
}

/** Straightforward definition: full sort per query, precision at each relevant item. */
function bruteForce(q: EmbeddingSet, g: EmbeddingSet, leaveOneOut: boolean): { recallAt1: number; recallAt5: number; mAP: number } {
  let r1 = 0;
  let r5 = 0;
  let ap = 0;
  const nq = q.labels.length;
  for (let i = 0; i < nq; i++) {
    const ranked: { score: number; relevant: boolean }[] = [];
    for (let j = 0; j < g.labels.length; j++) {
      if (leaveOneOut && i === j) continue;
      let s = 0;
      for (let k = 0; k < q.dim; k++) s += q.vectors[i * q.dim + k] * g.vectors[j * g.dim + k];
      ranked.push({ score: Math.fround(s), relevant: g.labels[j] === q.labels[i] });
    }
    ranked.sort((a, b) => b.score - a.score || Number(b.relevant) - Number(a.relevant));
    if (ranked[0].relevant) r1++;
    if (ranked.slice(0, 5).some((r) => r.relevant)) r5++;
    let hits = 0;
    let sum = 0;
    ranked.forEach((r, rank) => {
      if (r.relevant) sum += ++hits / (rank + 1);
    });
    ap += hits ? sum / hits : 0;
  }
  return { recallAt1: r1 / nq, recallAt5: r5 / nq, mAP: ap / nq };
}

describe('retrievalMetrics', () => {
  it('matches the textbook definition against a separate gallery', async () => {
    const q = embeddings(60, 8, 5, 1);
    const g = embeddings(300, 8, 5, 2);
    const got = await retrievalMetrics(q, g);
    const want = bruteForce(q, g, false);
    expect(got.recallAt1).toBeCloseTo(want.recallAt1, 10);
    expect(got.recallAt5).toBeCloseTo(want.recallAt5, 10);
    expect(got.mAP).toBeCloseTo(want.mAP, 6);
    expect(got.mAP).toBeGreaterThan(0.2);
    expect(got.mAP).toBeLessThan(0.9);
  });

  it('skips each query itself when ranking a set against itself', async () => {
    const q = embeddings(120, 8, 4, 3);
    const got = await retrievalMetrics(q, q, { leaveOneOut: true });
    const want = bruteForce(q, q, true);
    expect([got.recallAt1, got.recallAt5]).toEqual([want.recallAt1, want.recallAt5]);
    expect(got.mAP).toBeCloseTo(want.mAP, 6);
  });

  it('reports progress and handles queries without relevant items', async () => {
    const q = { vectors: Float32Array.from([1, 0]), labels: Int32Array.from([7]), dim: 2 };
    const g = { vectors: Float32Array.from([1, 0, 0, 1]), labels: Int32Array.from([1, 2]), dim: 2 };
    const progress: number[] = [];
    const got = await retrievalMetrics(q, g, { onProgress: (d) => progress.push(d) });
    expect([got.recallAt1, got.recallAt5, got.mAP]).toEqual([0, 0, 0]);
    expect(progress).toEqual([1]);
  });
});
