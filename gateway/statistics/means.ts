import { normalQuantile, regularizedBeta } from './distributions';
import type { Interval } from './proportions';

/** A sample summarized by what rollups can sum: its size, sum and sum of squares. */
export interface MomentSums {
  n: number;
  sum: number;
  sumOfSquares: number;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom. */
function studentCdf(t: number, df: number): number {
  const tail = 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** t such that P(T ≤ t) = p, by bisection on the CDF (monotone), bracketed by the normal quantile. */
export function studentQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`studentQuantile needs 0 < p < 1, got ${p}`);
  if (p < 0.5) return -studentQuantile(1 - p, df);
  // The t quantile lies above the normal one: widen the upper end until it brackets p.
  let low = normalQuantile(p);
  let high = low + 1;
  while (studentCdf(high, df) < p) high *= 2;
  for (let i = 0; i < 200 && high - low > 1e-12 * Math.max(1, high); i++) {
    const mid = (low + high) / 2;
    if (studentCdf(mid, df) < p) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

/**
 * Student's t interval for the mean of a sample known only by its moment sums, clipped to the
 * values the figure can take (`range`). By the central limit theorem it holds for bounded figures
 * such as cosines, overlap@k and average precision once a few tens of rows are in; below two rows
 * it is the whole range. A sample with no spread gets a zero-width interval at its mean.
 */
export function meanInterval(moments: MomentSums, confidence: number, range: readonly [number, number]): Interval {
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must lie in (0, 1), got ${confidence}`);
  const { n, sum, sumOfSquares } = moments;
  if (n === 0) return { estimate: NaN, lower: range[0], upper: range[1] };
  const mean = sum / n;
  if (n < 2) return { estimate: mean, lower: range[0], upper: range[1] };
  // Sums of squares carry rounding; a variance a hair below zero is zero.
  const variance = Math.max(0, (sumOfSquares - n * mean * mean) / (n - 1));
  const half = studentQuantile(1 - (1 - confidence) / 2, n - 1) * Math.sqrt(variance / n);
  return { estimate: mean, lower: Math.max(range[0], mean - half), upper: Math.min(range[1], mean + half) };
}

/**
 * Welch's interval for mean(b) − mean(a) of two independent samples known by their moment sums
 * (Welch–Satterthwaite degrees of freedom), clipped to `range`; the whole range while either
 * sample has fewer than two values.
 */
export function meanDifferenceInterval(a: MomentSums, b: MomentSums, confidence: number, range: readonly [number, number]): Interval {
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must lie in (0, 1), got ${confidence}`);
  const estimate = a.n > 0 && b.n > 0 ? b.sum / b.n - a.sum / a.n : NaN;
  if (a.n < 2 || b.n < 2) return { estimate, lower: range[0], upper: range[1] };
  const spread = (m: MomentSums) => Math.max(0, (m.sumOfSquares - m.sum ** 2 / m.n) / (m.n - 1)) / m.n;
  const va = spread(a);
  const vb = spread(b);
  const se = Math.sqrt(va + vb);
  if (se === 0) return { estimate, lower: estimate, upper: estimate };
  const df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1));
  const half = studentQuantile(1 - (1 - confidence) / 2, df) * se;
  return { estimate, lower: Math.max(range[0], estimate - half), upper: Math.min(range[1], estimate + half) };
}
