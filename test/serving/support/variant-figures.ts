import type { TestGateway } from '../../support/gateway-harness';

/** A variant's figures over every minute since a time, as `variantMetrics` reports them per minute. */
export interface VariantFigures {
  variantTag: string;
  requests: number;
  errors: number;
  shadowRequests: number;
  shadowErrors: number;
  compared: number;
  top1Agreement: number | null;
  meanKlDivergence: number | null;
  meanTop1ProbabilityDelta: number | null;
  meanCosine: number | null;
  meanOverlapAtK: number | null;
  feedback: number;
  correct: number;
  accuracy: number | null;
}

const COUNTS = ['requests', 'errors', 'shadowRequests', 'shadowErrors', 'compared', 'feedback', 'correct'] as const;
/** Means over the compared rows of a minute; the overlap's own denominator (rows that had a gallery) is not exposed, and in these suites it is every compared row. */
const MEANS_OVER_COMPARED = ['top1Agreement', 'meanKlDivergence', 'meanTop1ProbabilityDelta', 'meanCosine', 'meanOverlapAtK'] as const;

/**
 * One entry per variant tag, folding the minutes a test spanned: counts are summed and each mean
 * is recomputed from its minutes weighted by the rows behind it, so a test that straddles a
 * minute boundary sees the same figures as one that does not.
 */
export async function variantFigures(gateway: TestGateway, model: string, since: Date, variant?: string): Promise<Map<string, VariantFigures>> {
  const result = await gateway.graphql<{ variantMetrics: VariantFigures[] }>(
    `query($model: String!, $since: DateTimeISO!, $variant: String) { variantMetrics(model: $model, since: $since, variant: $variant) {
      variantTag ${[...COUNTS, ...MEANS_OVER_COMPARED].join(' ')} } }`,
    { model, since: since.toISOString(), variant },
  );
  if (result.errors) throw new Error(result.errors[0].message);
  const minutesByTag = new Map<string, VariantFigures[]>();
  for (const minute of result.data!.variantMetrics) minutesByTag.set(minute.variantTag, [...(minutesByTag.get(minute.variantTag) ?? []), minute]);

  const figures = new Map<string, VariantFigures>();
  for (const [variantTag, minutes] of minutesByTag) {
    const total = (key: (typeof COUNTS)[number]) => minutes.reduce((sum, minute) => sum + minute[key], 0);
    const weightedMean = (key: (typeof MEANS_OVER_COMPARED)[number]) => {
      const measured = minutes.filter((minute) => minute[key] !== null && minute.compared > 0);
      const rows = measured.reduce((sum, minute) => sum + minute.compared, 0);
      return rows > 0 ? measured.reduce((sum, minute) => sum + minute[key]! * minute.compared, 0) / rows : null;
    };
    const feedback = total('feedback');
    const correct = total('correct');
    figures.set(variantTag, {
      variantTag,
      requests: total('requests'),
      errors: total('errors'),
      shadowRequests: total('shadowRequests'),
      shadowErrors: total('shadowErrors'),
      compared: total('compared'),
      top1Agreement: weightedMean('top1Agreement'),
      meanKlDivergence: weightedMean('meanKlDivergence'),
      meanTop1ProbabilityDelta: weightedMean('meanTop1ProbabilityDelta'),
      meanCosine: weightedMean('meanCosine'),
      meanOverlapAtK: weightedMean('meanOverlapAtK'),
      feedback,
      correct,
      accuracy: feedback > 0 ? correct / feedback : null,
    });
  }
  return figures;
}
