import { histogramQuantile, type Histogram } from '../statistics/histogram-quantiles';
import { meanInterval } from '../statistics/means';
import { wilsonInterval, type Interval } from '../statistics/proportions';
import { ROLLUP_LATENCY_BUCKETS_MS, type RollupCounts } from '../serving/metric-rollups';
import type { ModelTask } from '../registry/registry-types';

/** Latency quantiles in ms, read off summed histogram buckets (null without observations). */
export interface LatencyQuantiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** What one variant did over a span of time (one step, or a whole window). */
export interface VariantFigures {
  requests: number;
  errors: number;
  /** Answered requests per second over the span. */
  requestRate: number;
  errorRate: number | null;
  latencyMs: LatencyQuantiles;
  computeMs: LatencyQuantiles;
  shadowRequests: number;
  shadowErrors: number;
  shadowDropped: number;
  compared: number;
  /** Classification: share of compared rows whose top-1 class agrees with the answering variant. */
  agreement: Interval | null;
  klDivergence: number | null;
  top1ProbabilityDelta: number | null;
  /** Retrieval: mean cosine of the embeddings, and overlap@k of the gallery neighbours. */
  cosine: number | null;
  overlapAtK: number | null;
  feedback: number;
  correct: number;
  accuracy: Interval | null;
  /** Retrieval models only. */
  retrieval: RetrievalFigures | null;
}

/**
 * A retrieval variant's figures with their intervals: against the answering variant while it
 * shadowed (cosine, and with a gallery overlap@k and rank correlation of the top-k), and from
 * feedback (recall@k with its Wilson interval, mAP@k); null where there were no rows.
 */
export interface RetrievalFigures {
  k: number;
  cosine: Interval | null;
  overlapAtK: Interval | null;
  rankCorrelation: Interval | null;
  recallAtK: Interval | null;
  mapAtK: Interval | null;
}

/** Mean of a bounded per-row figure with its Student-t interval, or null without rows. */
function mean(n: number, sum: number, sumOfSquares: number, range: readonly [number, number], confidence: number): Interval | null {
  return n > 0 ? meanInterval({ n, sum, sumOfSquares }, confidence, range) : null;
}

function retrievalFigures(counts: RollupCounts, k: number, confidence: number): RetrievalFigures {
  return {
    k,
    cosine: mean(counts.compared, counts.cosineSum, counts.cosineSqSum, [-1, 1], confidence),
    overlapAtK: mean(counts.overlapCompared, counts.overlapSum, counts.overlapSqSum, [0, 1], confidence),
    rankCorrelation: mean(counts.overlapCompared, counts.rankCorrelationSum, counts.rankCorrelationSqSum, [-1, 1], confidence),
    recallAtK: share(counts.correct, counts.feedback, confidence),
    mapAtK: mean(counts.feedback, counts.averagePrecisionSum, counts.averagePrecisionSqSum, [0, 1], confidence),
  };
}

const ratio = (part: number, whole: number) => (whole > 0 ? part / whole : null);

export const histogramOf = (counts: readonly number[]): Histogram => ({ bounds: ROLLUP_LATENCY_BUCKETS_MS, counts });

function quantiles(counts: readonly number[]): LatencyQuantiles {
  const histogram = histogramOf(counts);
  const at = (q: number) => {
    const value = histogramQuantile(histogram, q);
    return Number.isNaN(value) ? null : value;
  };
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

/** A share with its Wilson interval, or null with no trials. */
function share(successes: number, trials: number, confidence: number): Interval | null {
  return trials > 0 ? wilsonInterval(successes, trials, confidence) : null;
}

/**
 * The figures of summed rollup counts. Percentiles come from the summed buckets (never from
 * averaging per-minute percentiles), shares carry Wilson intervals at `confidence`, means
 * Student-t intervals. `retrievalK` is the k the retrieval figures were counted at.
 */
export function figuresOf(counts: RollupCounts, seconds: number, task: ModelTask, confidence: number, retrievalK: number): VariantFigures {
  const classification = task === 'CLASSIFICATION';
  return {
    requests: counts.requests,
    errors: counts.errors,
    requestRate: seconds > 0 ? counts.requests / seconds : 0,
    errorRate: ratio(counts.errors, counts.requests),
    latencyMs: quantiles(counts.latencyBuckets),
    computeMs: quantiles(counts.computeBuckets),
    shadowRequests: counts.shadowRequests,
    shadowErrors: counts.shadowErrors,
    shadowDropped: counts.shadowDropped,
    compared: counts.compared,
    agreement: classification ? share(counts.agreed, counts.compared, confidence) : null,
    klDivergence: classification ? ratio(counts.klSum, counts.compared) : null,
    top1ProbabilityDelta: classification ? ratio(counts.top1DeltaSum, counts.compared) : null,
    cosine: classification ? null : ratio(counts.cosineSum, counts.compared),
    overlapAtK: classification ? null : ratio(counts.overlapSum, counts.overlapCompared),
    feedback: counts.feedback,
    correct: counts.correct,
    accuracy: share(counts.correct, counts.feedback, confidence),
    retrieval: task === 'RETRIEVAL' ? retrievalFigures(counts, retrievalK, confidence) : null,
  };
}
