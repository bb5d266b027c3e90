import { Arg, Authorized, Float, Int, Query, Resolver } from 'type-graphql';
import {
  Interval,
  ModelMetrics,
  VariantComparison,
  VariantWindow,
  type VariantSeries,
} from '../../../schema/metrics';
import { MetricsQueries } from '../../metrics/metrics-queries';
import type { VariantFigures } from '../../metrics/variant-figures';
import type { PluginContext } from '../../plugins/plugin-api';
import type { Interval as StatInterval } from '../../statistics/proportions';

const finite = (value: number) => (Number.isFinite(value) ? value : null);

function toInterval(interval: StatInterval | null): Interval | null {
  return interval && { estimate: interval.estimate, lower: finite(interval.lower), upper: finite(interval.upper) };
}

function toWindow(f: VariantFigures): VariantWindow {
  const r = f.retrieval;
  return {
    ...f,
    agreement: toInterval(f.agreement),
    accuracy: toInterval(f.accuracy),
    retrieval: r && { k: r.k, cosine: toInterval(r.cosine), overlapAtK: toInterval(r.overlapAtK), rankCorrelation: toInterval(r.rankCorrelation), recallAtK: toInterval(r.recallAtK), mapAtK: toInterval(r.mapAtK) },
  };
}

/** Any comparison of two variants' figures, with its intervals made GraphQL's. */
const toComparison = <C extends { a: StatInterval | null; b: StatInterval | null; difference: StatInterval | null }>(c: C) => ({ ...c, a: toInterval(c.a), b: toInterval(c.b), difference: toInterval(c.difference) });

const DEFAULT_CONFIDENCE = 0.95;

/** Serving figures over time and variant comparisons, read from the per-minute rollups. */
@Resolver()
export class MetricsResolver {
  private readonly queries: MetricsQueries;

  constructor(context: PluginContext) {
    this.queries = new MetricsQueries(context.database, context.serving);
  }

  @Authorized('viewer')
  @Query(() => ModelMetrics, { description: "Per variant and time step: rate, errors, latency and compute percentiles, agreement, KL, overlap@k, accuracy, shadow drops; retrieval figures with intervals." })
  async modelMetrics(
    @Arg('model') model: string,
    @Arg('from', () => Date) from: Date,
    @Arg('to', () => Date, { nullable: true, description: 'Exclusive; now when omitted.' }) to: Date | null | undefined,
    @Arg('step', () => Int, { defaultValue: 60, description: 'Seconds per step, a whole number of minutes; at most 1440 steps.' }) step: number,
    @Arg('confidence', () => Float, { defaultValue: DEFAULT_CONFIDENCE }) confidence: number,
  ): Promise<ModelMetrics> {
    const result = await this.queries.modelMetrics(model, from, to ?? new Date(), step, confidence);
    return {
      model: result.model.name,
      from: result.from,
      to: result.to,
      stepSeconds: result.stepSeconds,
      confidence,
      steps: result.stepStarts,
      variants: result.variants.map(({ variant, steps, window }): VariantSeries => {
        const column = <T>(pick: (f: VariantFigures) => T) => steps.map(pick);
        return {
          variantId: variant.id,
          variantTag: variant.tag,
          precision: variant.precision,
          method: variant.method,
          parentVariantId: variant.parentVariantId,
          status: variant.status,
          window: toWindow(window),
          requests: column((f) => f.requests),
          errors: column((f) => f.errors),
          requestRate: column((f) => f.requestRate),
          errorRate: column((f) => f.errorRate),
          latencyP50Ms: column((f) => f.latencyMs.p50),
          latencyP95Ms: column((f) => f.latencyMs.p95),
          latencyP99Ms: column((f) => f.latencyMs.p99),
          computeP50Ms: column((f) => f.computeMs.p50),
          computeP95Ms: column((f) => f.computeMs.p95),
          computeP99Ms: column((f) => f.computeMs.p99),
          shadowRequests: column((f) => f.shadowRequests),
          shadowDropped: column((f) => f.shadowDropped),
          compared: column((f) => f.compared),
          agreement: column((f) => f.agreement?.estimate ?? null),
          klDivergence: column((f) => f.klDivergence),
          cosine: column((f) => f.cosine),
          overlapAtK: column((f) => f.overlapAtK),
          rankCorrelation: column((f) => f.retrieval?.rankCorrelation?.estimate ?? null),
          feedback: column((f) => f.feedback),
          accuracy: column((f) => f.accuracy?.estimate ?? null),
          accuracyLower: column((f) => f.accuracy?.lower ?? null),
          accuracyUpper: column((f) => f.accuracy?.upper ?? null),
          mapAtK: column((f) => f.retrieval?.mapAtK?.estimate ?? null),
        };
      }),
    };
  }

  @Authorized('viewer')
  @Query(() => VariantComparison, { description: 'Variant b against variant a over a window: differences with their intervals and significance.' })
  async compareVariants(
    @Arg('model') model: string,
    @Arg('a', { description: 'Variant tag or id (the reference, e.g. the FP32 parent).' }) a: string,
    @Arg('b', { description: 'Variant tag or id (the candidate, e.g. its W4A4 variant).' }) b: string,
    @Arg('from', () => Date) from: Date,
    @Arg('to', () => Date, { nullable: true, description: 'Exclusive; now when omitted.' }) to: Date | null | undefined,
    @Arg('confidence', () => Float, { defaultValue: DEFAULT_CONFIDENCE }) confidence: number,
  ): Promise<VariantComparison> {
    const result = await this.queries.compareVariants(model, a, b, from, to ?? new Date(), confidence);
    return {
      model: result.model.name,
      a: result.a.tag,
      b: result.b.tag,
      from: result.from,
      to: result.to,
      confidence,
      aWindow: toWindow(result.aFigures),
      bWindow: toWindow(result.bFigures),
      accuracy: toComparison(result.accuracy),
      errorRate: toComparison(result.errorRate),
      latency: (['endToEnd', 'compute'] as const).flatMap((measure) =>
        result.latency[measure].map((q) => ({ measure, quantile: q.quantile, ratio: toInterval(q.ratio), significant: q.significant })),
      ),
      retrieval: result.retrieval && { k: result.retrieval.k, recallAtK: toComparison(result.retrieval.recallAtK), mapAtK: toComparison(result.retrieval.mapAtK) },
    };
  }
}
