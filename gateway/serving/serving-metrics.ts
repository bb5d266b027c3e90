import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { bucketOf, type MetricRollups } from './metric-rollups';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import type { ClassificationComparison, EmbeddingComparison } from './comparison';
import type { PairedOutcome, RowScore } from './feedback-scores';

export type RequestRole = 'primary' | 'shadow';

/** Who a figure belongs to: ids key the rollups, names label Prometheus series. */
export interface VariantRef {
  modelId: string;
  modelName: string;
  variantId: string;
  variantTag: string;
}

/** The figures' key for a variant of a model. */
export const refOf = (model: ModelRecord, variant: VariantRecord): VariantRef => ({
  modelId: model.id,
  modelName: model.name,
  variantId: variant.id,
  variantTag: variant.tag,
});

/** Label value for requests refused before a model or variant was known. */
export const UNKNOWN = '-';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Every serving figure goes through here once and lands in both places: Prometheus series per
 * (model, variant), scraped at /metrics, and the per-minute rollups stored for GraphQL.
 */
export class ServingMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'model' | 'variant' | 'role'>;
  private readonly errors: Counter<'model' | 'variant' | 'role' | 'status'>;
  private readonly latency: Histogram<'model' | 'variant' | 'role'>;
  private readonly compute: Histogram<'model' | 'variant'>;
  private readonly batchRows: Histogram<'model' | 'variant'>;
  private readonly shadowDropped: Counter<'model' | 'variant'>;
  private readonly compared: Counter<'model' | 'primary' | 'shadow'>;
  private readonly agreed: Counter<'model' | 'primary' | 'shadow'>;
  private readonly kl: Histogram<'model' | 'primary' | 'shadow'>;
  private readonly top1Delta: Histogram<'model' | 'primary' | 'shadow'>;
  private readonly cosine: Histogram<'model' | 'primary' | 'shadow'>;
  private readonly overlap: Histogram<'model' | 'primary' | 'shadow'>;
  private readonly rankCorrelation: Histogram<'model' | 'primary' | 'shadow'>;
  private readonly feedback: Counter<'model' | 'variant' | 'outcome'>;
  private readonly averagePrecision: Histogram<'model' | 'variant'>;
  private readonly pairedRows: Counter<'model' | 'primary' | 'shadow' | 'outcome'>;
  /** Errors already counted where they arose, so the HTTP layer counts only the rest. */
  private readonly countedErrors = new WeakSet<object>();

  constructor(private readonly rollups: MetricRollups) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client names these gauges with a counter's _total suffix, which Prometheus' naming
    // rules (promtool check metrics) refuse; the process figures around them stay.
    for (const misnamed of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(misnamed);
    const pair = ['model', 'primary', 'shadow'] as const;
    this.requests = new Counter({ name: 'gateway_inference_requests_total', help: 'Inference requests (rows count once per request), failed ones included.', labelNames: ['model', 'variant', 'role'], registers });
    this.errors = new Counter({ name: 'gateway_inference_errors_total', help: 'Inference requests that failed, by HTTP status.', labelNames: ['model', 'variant', 'role', 'status'], registers });
    this.latency = new Histogram({ name: 'gateway_inference_latency_seconds', help: 'Gateway time per request, from arrival to answer (queue, batching and compute included).', labelNames: ['model', 'variant', 'role'], buckets: LATENCY_BUCKETS_S, registers });
    this.compute = new Histogram({ name: 'gateway_ort_compute_seconds', help: 'onnxruntime run time per run (a batch counts once).', labelNames: ['model', 'variant'], buckets: LATENCY_BUCKETS_S, registers });
    this.batchRows = new Histogram({ name: 'gateway_batch_rows', help: 'Rows per onnxruntime run (dynamic batching merges requests).', labelNames: ['model', 'variant'], buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers });
    this.shadowDropped = new Counter({ name: 'gateway_shadow_dropped_total', help: 'Mirrored requests not run because the shadow queue was full (shadows never displace primaries).', labelNames: ['model', 'variant'], registers });
    this.compared = new Counter({ name: 'gateway_shadow_comparisons_total', help: 'Rows compared between the answering variant and a shadow.', labelNames: pair, registers });
    this.agreed = new Counter({ name: 'gateway_shadow_top1_agreements_total', help: 'Compared classification rows whose top-1 classes agree.', labelNames: pair, registers });
    this.kl = new Histogram({ name: 'gateway_shadow_kl_divergence', help: 'KL(p_primary || p_shadow) per classification row, nats.', labelNames: pair, buckets: [0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers });
    this.top1Delta = new Histogram({ name: 'gateway_shadow_top1_probability_delta', help: "|p_primary(c) - p_shadow(c)| for the primary's top-1 class c.", labelNames: pair, buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1], registers });
    this.cosine = new Histogram({ name: 'gateway_shadow_embedding_cosine', help: 'Cosine similarity of primary and shadow embeddings per row.', labelNames: pair, buckets: [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1], registers });
    this.overlap = new Histogram({ name: 'gateway_shadow_neighbour_overlap', help: 'overlap@k of the gallery neighbours found with primary and shadow embeddings.', labelNames: pair, buckets: [0, 0.2, 0.4, 0.6, 0.8, 0.9, 1], registers });
    this.rankCorrelation = new Histogram({ name: 'gateway_shadow_neighbour_rank_correlation', help: "Spearman rank correlation of the primary's and the shadow's top-k gallery neighbours (missing items ranked k + 1).", labelNames: pair, buckets: [-0.5, 0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1], registers });
    this.feedback = new Counter({ name: 'gateway_feedback_total', help: 'Rows with ground truth from /feedback, by whether the variant predicted it (retrieval: a relevant item in its top k).', labelNames: ['model', 'variant', 'outcome'], registers });
    this.averagePrecision = new Histogram({ name: 'gateway_retrieval_average_precision', help: 'AP@k of a retrieval variant per query with feedback (SERVING_RETRIEVAL_K); mean = mAP@k.', labelNames: ['model', 'variant'], buckets: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1], registers });
    this.pairedRows = new Counter({ name: 'gateway_shadow_paired_feedback_total', help: 'Rows with ground truth predicted by both the answering variant and a shadow, by who was right (both, primaryOnly, shadowOnly, neither).', labelNames: [...pair, 'outcome'], registers });
  }

  succeeded(ref: VariantRef, role: RequestRole, latencyMs: number): void {
    const labels = { model: ref.modelName, variant: ref.variantTag, role };
    this.requests.inc(labels);
    this.latency.observe(labels, latencyMs / 1000);
    const counts = this.rollups.counts(ref.modelId, ref.variantId);
    if (role === 'shadow') {
      counts.shadowRequests++;
      return;
    }
    counts.requests++;
    counts.latencyMsSum += latencyMs;
    counts.latencyBuckets[bucketOf(latencyMs)]++;
  }

  /** A failed request still counts as a request, so requests − errors is always the successes. */
  failed(ref: VariantRef | Pick<VariantRef, 'modelName'> | undefined, role: RequestRole, status: number, error?: unknown): void {
    if (typeof error === 'object' && error !== null) this.countedErrors.add(error);
    const full = ref && 'variantId' in ref ? ref : undefined;
    const labels = { model: ref?.modelName ?? UNKNOWN, variant: full?.variantTag ?? UNKNOWN, role };
    this.requests.inc(labels);
    this.errors.inc({ ...labels, status: String(status) });
    if (!full) return;
    const counts = this.rollups.counts(full.modelId, full.variantId);
    if (role === 'shadow') {
      counts.shadowRequests++;
      counts.shadowErrors++;
    } else {
      counts.requests++;
      counts.errors++;
    }
  }

  /** Exposes the waiting requests per variant, read at each scrape. */
  watchQueues(depths: () => Array<{ model: string; variant: string; lane: RequestRole; depth: number }>): void {
    new Gauge({
      name: 'gateway_queue_depth',
      help: 'Requests waiting for a variant session, by the traffic it serves (primary or shadow).',
      labelNames: ['model', 'variant', 'role'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { model, variant, lane, depth } of depths()) this.set({ model, variant, role: lane }, depth);
      },
    });
  }

  /** Exposes each variant's share of a model's traffic (primary weight share, shadow mirror share), read at each scrape. */
  watchTrafficShares(shares: () => Promise<Array<{ model: string; variant: string; role: RequestRole; share: number }>>): void {
    new Gauge({
      name: 'gateway_traffic_share',
      help: "A variant's share of its model's requests by the traffic policy: primary = weight / sum of weights, shadow = mirrored share (0..1). Canary rollouts step it.",
      labelNames: ['model', 'variant', 'role'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { model, variant, role, share } of await shares()) this.set({ model, variant, role }, share);
      },
    });
  }

  isCounted(error: unknown): boolean {
    return typeof error === 'object' && error !== null && this.countedErrors.has(error);
  }

  ran(ref: VariantRef, rows: number, computeMs: number, requests: number): void {
    const labels = { model: ref.modelName, variant: ref.variantTag };
    this.compute.observe(labels, computeMs / 1000);
    this.batchRows.observe(labels, rows);
    // Rollups keep compute time per request, so a mean per request is sum / requests.
    const counts = this.rollups.counts(ref.modelId, ref.variantId);
    counts.computeMsSum += computeMs * requests;
    counts.computeBuckets[bucketOf(computeMs)] += requests;
  }

  /** A mirrored request not run because the shadow's queue was full. */
  shadowSkipped(ref: VariantRef): void {
    this.shadowDropped.inc({ model: ref.modelName, variant: ref.variantTag });
    this.rollups.counts(ref.modelId, ref.variantId).shadowDropped++;
  }

  comparedClassification(primary: VariantRef, shadow: VariantRef, row: ClassificationComparison): void {
    const labels = { model: primary.modelName, primary: primary.variantTag, shadow: shadow.variantTag };
    this.compared.inc(labels);
    if (row.top1Agrees) this.agreed.inc(labels);
    this.kl.observe(labels, row.klDivergence);
    this.top1Delta.observe(labels, row.top1ProbabilityDelta);
    const counts = this.rollups.counts(shadow.modelId, shadow.variantId);
    counts.compared++;
    if (row.top1Agrees) counts.agreed++;
    counts.klSum += row.klDivergence;
    counts.top1DeltaSum += row.top1ProbabilityDelta;
  }

  comparedEmbedding(primary: VariantRef, shadow: VariantRef, row: EmbeddingComparison): void {
    const labels = { model: primary.modelName, primary: primary.variantTag, shadow: shadow.variantTag };
    this.compared.inc(labels);
    this.cosine.observe(labels, row.cosine);
    const counts = this.rollups.counts(shadow.modelId, shadow.variantId);
    counts.compared++;
    counts.cosineSum += row.cosine;
    counts.cosineSqSum += row.cosine ** 2;
    if (row.overlapAtK === undefined || row.rankCorrelation === undefined) return;
    this.overlap.observe(labels, row.overlapAtK);
    this.rankCorrelation.observe(labels, row.rankCorrelation);
    counts.overlapCompared++;
    counts.overlapSum += row.overlapAtK;
    counts.overlapSqSum += row.overlapAtK ** 2;
    counts.rankCorrelationSum += row.rankCorrelation;
    counts.rankCorrelationSqSum += row.rankCorrelation ** 2;
  }

  /** A variant's rows with feedback: correct = hits (retrieval: a relevant item in the top k), AP@k summed for retrieval. */
  scored(ref: VariantRef, scores: readonly RowScore[]): void {
    const labels = { model: ref.modelName, variant: ref.variantTag };
    const correct = scores.filter((s) => s.hit).length;
    this.feedback.inc({ ...labels, outcome: 'correct' }, correct);
    this.feedback.inc({ ...labels, outcome: 'incorrect' }, scores.length - correct);
    const counts = this.rollups.counts(ref.modelId, ref.variantId);
    counts.feedback += scores.length;
    counts.correct += correct;
    for (const { averagePrecision } of scores) {
      if (averagePrecision === undefined) continue;
      this.averagePrecision.observe(labels, averagePrecision);
      counts.averagePrecisionSum += averagePrecision;
      counts.averagePrecisionSqSum += averagePrecision ** 2;
    }
  }

  /** Paired correctness of a shadow against the variant that answered the same rows, kept on the shadow's rollup row. */
  paired(primary: VariantRef, shadow: VariantRef, outcome: PairedOutcome): void {
    const labels = { model: primary.modelName, primary: primary.variantTag, shadow: shadow.variantTag };
    const { averagePrecisionDeltas, ...byWhoWasRight } = outcome;
    for (const [name, rows] of Object.entries(byWhoWasRight)) this.pairedRows.inc({ ...labels, outcome: name }, rows);
    const counts = this.rollups.counts(shadow.modelId, shadow.variantId);
    counts.pairedBoth += outcome.both;
    counts.pairedPrimaryOnly += outcome.primaryOnly;
    counts.pairedShadowOnly += outcome.shadowOnly;
    counts.pairedNeither += outcome.neither;
    for (const delta of averagePrecisionDeltas) {
      counts.pairedApDeltaSum += delta;
      counts.pairedApDeltaSqSum += delta ** 2;
    }
  }
}
