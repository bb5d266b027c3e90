import { normalQuantile } from './distributions';
import type { Interval } from './proportions';

/** Counts per bucket; bucket i holds values in (bounds[i-1], bounds[i]], the last one everything above. */
export interface Histogram {
  /** Upper bounds of the finite buckets, increasing. */
  bounds: readonly number[];
  /** bounds.length + 1 counts: one per finite bucket and the overflow bucket. */
  counts: readonly number[];
}

function total(histogram: Histogram): number {
  return histogram.counts.reduce((sum, c) => sum + c, 0);
}

/**
 * The value at rank `rank` (0-based, fractional allowed) of the histogram's observations,
 * interpolated linearly inside its bucket as Prometheus' histogram_quantile does; the overflow
 * bucket answers its lower bound (the largest finite one), as nothing is known above it.
 */
function valueAtRank(histogram: Histogram, rank: number): number {
  const { bounds, counts } = histogram;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) continue;
    if (rank < seen + counts[i]) {
      if (i === bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - seen + 1) / counts[i]);
    }
    seen += counts[i];
  }
  return bounds[bounds.length - 1];
}

/** The q-quantile of a histogram's observations (NaN when it is empty). */
export function histogramQuantile(histogram: Histogram, q: number): number {
  const n = total(histogram);
  if (n === 0) return NaN;
  return valueAtRank(histogram, Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1)));
}

/**
 * A distribution-free interval for the q-quantile: the order statistics whose ranks bracket n·q
 * with the binomial's normal approximation, read off the histogram. It needs no assumption about
 * the shape of the latency distribution and costs nothing to compute.
 */
export function histogramQuantileInterval(histogram: Histogram, q: number, confidence: number): Interval {
  const n = total(histogram);
  if (n === 0) return { estimate: NaN, lower: 0, upper: Infinity };
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const spread = z * Math.sqrt(n * q * (1 - q));
  const lowRank = Math.floor(n * q - spread) - 1;
  const highRank = Math.ceil(n * q + spread);
  return {
    estimate: histogramQuantile(histogram, q),
    lower: lowRank < 0 ? 0 : valueAtRank(histogram, lowRank),
    upper: highRank > n - 1 ? Infinity : valueAtRank(histogram, highRank),
  };
}

/**
 * The ratio of two histograms' q-quantiles (first / second) with a conservative interval: each
 * quantile's interval at confidence 1 − (1 − c)/2, so both hold together at c (Bonferroni), and
 * the ratio's bounds are the extreme ratios of the two intervals.
 */
export function quantileRatio(first: Histogram, second: Histogram, q: number, confidence: number): Interval {
  const each = 1 - (1 - confidence) / 2;
  const a = histogramQuantileInterval(first, q, each);
  const b = histogramQuantileInterval(second, q, each);
  return {
    estimate: a.estimate / b.estimate,
    lower: b.upper === Infinity ? 0 : a.lower / b.upper,
    upper: b.lower === 0 ? Infinity : a.upper / b.lower,
  };
}
