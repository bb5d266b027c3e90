import { Field, Float, ID, Int, ObjectType } from 'type-graphql';

@ObjectType({ description: 'An estimate with its two-sided interval at the query\'s confidence; a null bound is unbounded.' })
export class Interval {
  @Field(() => Float) estimate!: number;
  @Field(() => Float, { nullable: true }) lower!: number | null;
  @Field(() => Float, { nullable: true }) upper!: number | null;
}

@ObjectType({ description: 'Latency quantiles in ms from summed histogram buckets (interpolated inside a bucket); null without observations.' })
export class LatencyQuantiles {
  @Field(() => Float, { nullable: true }) p50!: number | null;
  @Field(() => Float, { nullable: true }) p95!: number | null;
  @Field(() => Float, { nullable: true }) p99!: number | null;
}

@ObjectType({ description: "A retrieval variant's figures over a window with their intervals at the query's confidence; null without rows." })
export class RetrievalWindow {
  @Field(() => Int, { description: 'The k of overlap@k, rank correlation, recall@k and mAP@k (SERVING_RETRIEVAL_K).' }) k!: number;
  @Field(() => Interval, { nullable: true, description: 'Mean cosine of its embeddings and the answering variant\'s, while shadowing (Student t).' }) cosine!: Interval | null;
  @Field(() => Interval, { nullable: true, description: 'Mean overlap@k of its gallery neighbours and the answering variant\'s (Student t).' }) overlapAtK!: Interval | null;
  @Field(() => Interval, { nullable: true, description: 'Mean Spearman rank correlation of the two top-k neighbour lists (Student t).' }) rankCorrelation!: Interval | null;
  @Field(() => Interval, { nullable: true, description: 'Share of queries with feedback that have a relevant item in the top k (Wilson).' }) recallAtK!: Interval | null;
  @Field(() => Interval, { nullable: true, description: 'Mean AP@k over queries with feedback (Student t).' }) mapAtK!: Interval | null;
}

@ObjectType({ description: "One variant's figures over a whole window." })
export class VariantWindow {
  @Field(() => Int, { description: 'Requests this variant answered (failed ones included).' }) requests!: number;
  @Field(() => Int) errors!: number;
  @Field(() => Float, { description: 'Answered requests per second.' }) requestRate!: number;
  @Field(() => Float, { nullable: true }) errorRate!: number | null;
  @Field(() => LatencyQuantiles, { description: 'End to end, of answered requests (a pure shadow has none).' }) latencyMs!: LatencyQuantiles;
  @Field(() => LatencyQuantiles, { description: 'onnxruntime run time per request, answered and shadowed.' }) computeMs!: LatencyQuantiles;
  @Field(() => Int, { description: 'Mirrored requests this variant ran as a shadow.' }) shadowRequests!: number;
  @Field(() => Int) shadowErrors!: number;
  @Field(() => Int, { description: 'Mirrored requests dropped because its shadow queue was full.' }) shadowDropped!: number;
  @Field(() => Int, { description: 'Rows compared with the answering variant while shadowing.' }) compared!: number;
  @Field(() => Interval, { nullable: true, description: 'Classification: share of compared rows with the same top-1 class (Wilson interval).' })
  agreement!: Interval | null;
  @Field(() => Float, { nullable: true, description: 'Classification: mean KL(p_answered || p_this), nats.' }) klDivergence!: number | null;
  @Field(() => Float, { nullable: true }) top1ProbabilityDelta!: number | null;
  @Field(() => Float, { nullable: true, description: 'Retrieval: mean cosine of the embeddings.' }) cosine!: number | null;
  @Field(() => Float, { nullable: true, description: 'Retrieval: mean overlap@k of gallery neighbours.' }) overlapAtK!: number | null;
  @Field(() => Int, { description: 'Rows with ground truth from /feedback.' }) feedback!: number;
  @Field(() => Int) correct!: number;
  @Field(() => Interval, { nullable: true, description: 'Live accuracy from feedback (Wilson interval); retrieval: recall@k.' }) accuracy!: Interval | null;
  @Field(() => RetrievalWindow, { nullable: true, description: 'Retrieval models only.' }) retrieval!: RetrievalWindow | null;
}

@ObjectType({ description: "A variant's figures per step, one list entry per step of ModelMetrics.steps (columns, as charts read them)." })
export class VariantSeries {
  @Field(() => ID) variantId!: string;
  @Field() variantTag!: string;
  @Field() precision!: string;
  @Field() method!: string;
  @Field(() => ID, { nullable: true }) parentVariantId!: string | null;
  @Field() status!: string;
  @Field(() => VariantWindow, { description: 'The whole window at once.' }) window!: VariantWindow;
  @Field(() => [Int]) requests!: number[];
  @Field(() => [Int]) errors!: number[];
  @Field(() => [Float], { description: 'Answered requests per second.' }) requestRate!: number[];
  @Field(() => [Float], { nullable: 'items' }) errorRate!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) latencyP50Ms!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) latencyP95Ms!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) latencyP99Ms!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) computeP50Ms!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) computeP95Ms!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) computeP99Ms!: Array<number | null>;
  @Field(() => [Int]) shadowRequests!: number[];
  @Field(() => [Int]) shadowDropped!: number[];
  @Field(() => [Int]) compared!: number[];
  @Field(() => [Float], { nullable: 'items' }) agreement!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) klDivergence!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) cosine!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) overlapAtK!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items', description: 'Retrieval: mean rank correlation of the top-k neighbours.' }) rankCorrelation!: Array<number | null>;
  @Field(() => [Int]) feedback!: number[];
  @Field(() => [Float], { nullable: 'items' }) accuracy!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) accuracyLower!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items' }) accuracyUpper!: Array<number | null>;
  @Field(() => [Float], { nullable: 'items', description: 'Retrieval: mAP@k from feedback.' }) mapAtK!: Array<number | null>;
}

@ObjectType({ description: "A model's serving figures per variant and time step, from the per-minute rollups summed over replicas." })
export class ModelMetrics {
  @Field() model!: string;
  @Field() from!: Date;
  @Field() to!: Date;
  @Field(() => Int) stepSeconds!: number;
  @Field(() => Float) confidence!: number;
  @Field(() => [Date], { description: 'Start of each step; step i covers [steps[i], steps[i] + stepSeconds).' }) steps!: Date[];
  @Field(() => [VariantSeries]) variants!: VariantSeries[];
}

@ObjectType({ description: 'A share of two variants and its difference b − a.' })
export class ProportionComparison {
  @Field(() => Interval, { nullable: true }) a!: Interval | null;
  @Field(() => Interval, { nullable: true }) b!: Interval | null;
  @Field(() => Interval, { nullable: true, description: 'b − a (Newcombe); significant when it excludes 0.' }) difference!: Interval | null;
  @Field({ description: 'From rows both variants answered (paired interval, McNemar) rather than from independent samples.' }) paired!: boolean;
  @Field(() => Int) samples!: number;
  @Field(() => Float, { nullable: true, description: "McNemar's exact two-sided p-value (paired only)." }) pValue!: number | null;
  @Field() significant!: boolean;
}

@ObjectType({ description: 'A mean of two variants (mAP@k) and its difference b − a.' })
export class MeanComparison {
  @Field(() => Interval, { nullable: true, description: "a's mean over its own rows (Student t)." }) a!: Interval | null;
  @Field(() => Interval, { nullable: true }) b!: Interval | null;
  @Field(() => Interval, { nullable: true, description: 'b − a: mean of the per-row differences when paired (Student t), else Welch; significant when it excludes 0.' }) difference!: Interval | null;
  @Field({ description: 'From rows both variants ranked (one shadowed the other) rather than from independent samples.' }) paired!: boolean;
  @Field(() => Int) samples!: number;
  @Field() significant!: boolean;
}

@ObjectType({ description: 'Retrieval variants compared on feedback: recall@k (hit-based, paired as accuracy is) and mAP@k.' })
export class RetrievalComparison {
  @Field(() => Int) k!: number;
  @Field(() => ProportionComparison) recallAtK!: ProportionComparison;
  @Field(() => MeanComparison) mapAtK!: MeanComparison;
}

@ObjectType({ description: 'A latency quantile of b over a: the ratio of the two, with a distribution-free interval from the histograms.' })
export class QuantileComparison {
  @Field({ description: 'endToEnd or compute.' }) measure!: string;
  @Field(() => Float) quantile!: number;
  @Field(() => Interval, { nullable: true, description: 'b / a; null when either has no observations.' }) ratio!: Interval | null;
  @Field({ description: 'The interval excludes 1.' }) significant!: boolean;
}

@ObjectType({ description: 'Variant b against variant a over a window, with the statistics the rollout guardrails use.' })
export class VariantComparison {
  @Field() model!: string;
  @Field() a!: string;
  @Field() b!: string;
  @Field() from!: Date;
  @Field() to!: Date;
  @Field(() => Float) confidence!: number;
  @Field(() => VariantWindow) aWindow!: VariantWindow;
  @Field(() => VariantWindow) bWindow!: VariantWindow;
  @Field(() => ProportionComparison, { description: 'Live accuracy from feedback.' }) accuracy!: ProportionComparison;
  @Field(() => ProportionComparison, { description: 'Failed share of answered requests.' }) errorRate!: ProportionComparison;
  @Field(() => [QuantileComparison], { description: 'p50, p95, p99 end to end and of compute.' }) latency!: QuantileComparison[];
  @Field(() => RetrievalComparison, { nullable: true, description: 'Retrieval models only.' }) retrieval!: RetrievalComparison | null;
}
