import { quantileRatio } from '../statistics/histogram-quantiles';
import { meanDifferenceInterval, meanInterval, type MomentSums } from '../statistics/means';
import { mcnemarExact } from '../statistics/mcnemar';
import { pairedDifference, proportionDifference, wilsonInterval, type Interval, type PairedCounts } from '../statistics/proportions';
import type { RollupCounts } from '../serving/metric-rollups';
import { histogramOf } from './variant-figures';

/** Two variants' shares of the same thing (accuracy, errors) and their difference b − a. */
export interface ProportionComparison {
  a: Interval | null;
  b: Interval | null;
  /** b − a; the interval excludes 0 when the difference is significant. */
  difference: Interval | null;
  /** True when the difference comes from rows both variants saw (Newcombe paired, McNemar). */
  paired: boolean;
  /** Paired rows, or the two sample sizes' sum when unpaired. */
  samples: number;
  /** McNemar's exact two-sided p-value (paired only). */
  pValue: number | null;
  significant: boolean;
}

/** Two variants' means of a per-row figure (mAP@k) and their difference b − a. */
export interface MeanComparison {
  /** Each variant's mean over its own rows. */
  a: Interval | null;
  b: Interval | null;
  /** b − a: the mean of the per-row differences when paired (Student t), else Welch's interval. */
  difference: Interval | null;
  paired: boolean;
  /** Paired rows, or the two sample sizes' sum when unpaired. */
  samples: number;
  significant: boolean;
}

/** One latency quantile of both variants and their ratio b / a. */
export interface QuantileComparison {
  quantile: number;
  ratio: Interval | null;
  significant: boolean;
}

export interface LatencyComparison {
  endToEnd: QuantileComparison[];
  compute: QuantileComparison[];
}

export const COMPARED_QUANTILES = [0.5, 0.95, 0.99] as const;

const excludes = (interval: Interval, value: number) => interval.lower > value || interval.upper < value;

function unpaired(aSuccesses: number, aTrials: number, bSuccesses: number, bTrials: number, confidence: number): ProportionComparison {
  const a = aTrials > 0 ? wilsonInterval(aSuccesses, aTrials, confidence) : null;
  const b = bTrials > 0 ? wilsonInterval(bSuccesses, bTrials, confidence) : null;
  const difference = a && b ? proportionDifference(bSuccesses, bTrials, aSuccesses, aTrials, confidence) : null;
  return { a, b, difference, paired: false, samples: aTrials + bTrials, pValue: null, significant: difference !== null && excludes(difference, 0) };
}

/**
 * Accuracy of b against a: paired (Newcombe's paired interval and McNemar's exact test) when the
 * rows both answered are counted, else from each variant's own feedback (Newcombe's hybrid score).
 * `pairs` counts rows from a's point of view: onlyFirst = only a right.
 */
export function compareAccuracy(a: RollupCounts, b: RollupCounts, confidence: number, pairs?: PairedCounts): ProportionComparison {
  const samples = pairs ? pairs.both + pairs.onlyFirst + pairs.onlySecond + pairs.neither : 0;
  if (!pairs || samples === 0) return unpaired(a.correct, a.feedback, b.correct, b.feedback, confidence);
  const swapped: PairedCounts = { both: pairs.both, onlyFirst: pairs.onlySecond, onlySecond: pairs.onlyFirst, neither: pairs.neither };
  const difference = pairedDifference(swapped, confidence);
  const pValue = mcnemarExact(pairs.onlyFirst, pairs.onlySecond).twoSided;
  return {
    a: wilsonInterval(pairs.both + pairs.onlyFirst, samples, confidence),
    b: wilsonInterval(pairs.both + pairs.onlySecond, samples, confidence),
    difference,
    paired: true,
    samples,
    pValue,
    significant: pValue < 1 - confidence,
  };
}

/**
 * mAP@k of b against a: from the per-query AP@k differences (b − a) of the queries both ranked
 * when counted (`pairedDeltas`), else from each variant's own feedback (Welch).
 */
export function compareMeanAveragePrecision(a: RollupCounts, b: RollupCounts, confidence: number, pairedDeltas?: MomentSums): MeanComparison {
  const moments = (c: RollupCounts): MomentSums => ({ n: c.feedback, sum: c.averagePrecisionSum, sumOfSquares: c.averagePrecisionSqSum });
  const own = (c: RollupCounts) => (c.feedback > 0 ? meanInterval(moments(c), confidence, [0, 1]) : null);
  const paired = pairedDeltas !== undefined && pairedDeltas.n > 0;
  const difference = paired
    ? meanInterval(pairedDeltas, confidence, [-1, 1])
    : a.feedback > 0 && b.feedback > 0 ? meanDifferenceInterval(moments(a), moments(b), confidence, [-1, 1]) : null;
  return {
    a: own(a),
    b: own(b),
    difference,
    paired,
    samples: paired ? pairedDeltas.n : a.feedback + b.feedback,
    significant: difference !== null && excludes(difference, 0),
  };
}

/** Error rates of answered requests (independent samples). */
export function compareErrorRates(a: RollupCounts, b: RollupCounts, confidence: number): ProportionComparison {
  return unpaired(a.errors, a.requests, b.errors, b.requests, confidence);
}

function quantileRatios(a: readonly number[], b: readonly number[], confidence: number): QuantileComparison[] {
  const empty = (counts: readonly number[]) => counts.every((n) => n === 0);
  return COMPARED_QUANTILES.map((quantile) => {
    if (empty(a) || empty(b)) return { quantile, ratio: null, significant: false };
    const ratio = quantileRatio(histogramOf(b), histogramOf(a), quantile, confidence);
    return { quantile, ratio, significant: excludes(ratio, 1) };
  });
}

/** Latency quantiles of b over a's, with distribution-free intervals from the histograms. */
export function compareLatency(a: RollupCounts, b: RollupCounts, confidence: number): LatencyComparison {
  return { endToEnd: quantileRatios(a.latencyBuckets, b.latencyBuckets, confidence), compute: quantileRatios(a.computeBuckets, b.computeBuckets, confidence) };
}
