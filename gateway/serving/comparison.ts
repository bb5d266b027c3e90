/**
 * How far a variant's answer is from the answer the caller got, per row. Pure math, so the same
 * figures come out of live traffic, tests and offline evaluation.
 */

/** Class probabilities from a row that may already be probabilities (softmax output) or logits. */
export function toProbabilities(row: ArrayLike<number>): Float64Array {
  let sum = 0;
  let inUnitRange = true;
  for (let i = 0; i < row.length; i++) {
    sum += row[i];
    if (!(row[i] >= 0 && row[i] <= 1)) inUnitRange = false;
  }
  const out = new Float64Array(row.length);
  if (inUnitRange && Math.abs(sum - 1) < 1e-3) {
    for (let i = 0; i < row.length; i++) out[i] = row[i];
    return out;
  }
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let total = 0;
  for (let i = 0; i < row.length; i++) {
    out[i] = Math.exp(row[i] - max);
    total += out[i];
  }
  for (let i = 0; i < row.length; i++) out[i] /= total;
  return out;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export interface ClassificationComparison {
  top1Agrees: boolean;
  /** KL(p‖q) in nats, p the answered variant's distribution, q the compared one's. */
  klDivergence: number;
  /** |p(c) − q(c)| for c, the answered variant's top-1 class. */
  top1ProbabilityDelta: number;
}

/** Keeps KL finite when a quantized model puts exactly zero mass on a class. */
const PROBABILITY_FLOOR = 1e-12;

export function compareClassification(answered: ArrayLike<number>, compared: ArrayLike<number>): ClassificationComparison {
  const p = toProbabilities(answered);
  const q = toProbabilities(compared);
  let kl = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] > 0) kl += p[i] * Math.log(p[i] / Math.max(q[i], PROBABILITY_FLOOR));
  }
  const top1 = argmax(p);
  return { top1Agrees: top1 === argmax(q), klDivergence: Math.max(0, kl), top1ProbabilityDelta: Math.abs(p[top1] - q[top1]) };
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Share of ids the two top-k lists have in common (order ignored). */
export function overlapAtK(a: readonly string[], b: readonly string[]): number {
  const k = Math.max(a.length, b.length);
  if (k === 0) return 1;
  const inA = new Set(a);
  return b.filter((id) => inA.has(id)).length / k;
}

/**
 * Spearman's rank correlation of two top-k lists over the union of their items, an item missing
 * from a list ranked k + 1 (just past its end, Fagin's location parameter): 1 for the same order,
 * lower as the order or the membership differs. Lists of one identical item correlate fully.
 */
export function rankCorrelationAtK(a: readonly string[], b: readonly string[]): number {
  const k = Math.max(a.length, b.length);
  const union = [...new Set([...a, ...b])];
  if (union.length <= 1) return a.length === b.length ? 1 : 0;
  const rankIn = (list: readonly string[]) => {
    const at = new Map(list.map((id, i) => [id, i + 1]));
    return union.map((id) => at.get(id) ?? k + 1);
  };
  const x = rankIn(a);
  const y = rankIn(b);
  const mean = (v: number[]) => v.reduce((s, n) => s + n, 0) / v.length;
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < union.length; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

/** How a shadow's embedding of a row compares with the answering variant's; the neighbour figures need a gallery. */
export interface EmbeddingComparison {
  cosine: number;
  overlapAtK?: number;
  rankCorrelation?: number;
}

/** Row i of a [rows, width] matrix stored flat. */
export function rowOf<T extends { subarray(start: number, end: number): T; length: number }>(data: T, rows: number, i: number): T {
  const width = data.length / rows;
  return data.subarray(i * width, (i + 1) * width);
}
