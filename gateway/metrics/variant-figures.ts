import { histogramQuantile, type Histogram } from '../statistics/histogram-quantiles';
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
 * averaging per-minute percentiles), shares carry Wilson intervals at `confidence`.
 */
export function figuresOf(counts: RollupCounts, seconds: number, task: ModelTask, confidence: number): VariantFigures {
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
  };
}
