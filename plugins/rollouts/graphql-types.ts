import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';

export enum RolloutStatusEnum {
  running = 'running',
  paused = 'paused',
  promoted = 'promoted',
  rolled_back = 'rolled_back',
  aborted = 'aborted',
}
registerEnumType(RolloutStatusEnum, { name: 'RolloutStatus', description: 'running and paused rollouts are live; the others are finished.' });

@ObjectType({ description: 'One traffic step of a rollout.' })
export class RolloutStep {
  @Field(() => Float) trafficPercent!: number;
  @Field(() => Int) minRequests!: number;
  @Field(() => Int, { description: 'Seconds.' }) minDuration!: number;
  @Field(() => Int, { nullable: true, description: 'Seconds after which the step, not passed, is rolled back; null: it holds as long as it takes.' }) maxDuration!: number | null;
}

@ObjectType({ description: 'The guardrails a rollout judges; null: switched off.' })
export class RolloutGuardrails {
  @Field(() => Float, { nullable: true }) maxAccuracyDrop!: number | null;
  @Field(() => Float, { nullable: true }) minAgreement!: number | null;
  @Field(() => Float, { nullable: true }) minOverlapAtK!: number | null;
  @Field(() => Float, { nullable: true }) minCosine!: number | null;
  @Field(() => Float, { nullable: true }) maxRecallDrop!: number | null;
  @Field(() => Float, { nullable: true }) maxLatencyRatio!: number | null;
  @Field(() => Float, { nullable: true }) maxErrorRate!: number | null;
  @Field(() => Float) confidence!: number;
}

@ObjectType({ description: 'Feedback rows (classifier) or queries (encoder) both variants answered, by who was right.' })
export class GuardrailPairs {
  @Field(() => Int) both!: number;
  @Field(() => Int) candidateOnly!: number;
  @Field(() => Int) baselineOnly!: number;
  @Field(() => Int) neither!: number;
}

@ObjectType({ description: 'A guardrail as judged at a decision: the figure, its interval at the rollout confidence, and the verdict.' })
export class GuardrailFigure {
  @Field({ description: 'accuracy (candidate − baseline on paired feedback rows), agreement, overlap (mean overlap@k), cosine (mean), recall (candidate − baseline recall@k on paired feedback queries), latency (p99 ratio), errorRate.' }) guardrail!: string;
  @Field({ description: 'holds, violated, unknown (not conclusive yet) or inapplicable (this step cannot measure it).' }) verdict!: string;
  @Field(() => Float, { nullable: true }) estimate!: number | null;
  @Field(() => Float, { nullable: true }) lower!: number | null;
  @Field(() => Float, { nullable: true, description: 'null: unbounded (too few observations).' }) upper!: number | null;
  @Field(() => Float) threshold!: number;
  @Field(() => Int) samples!: number;
  @Field(() => Float, { nullable: true, description: "McNemar's exact one-sided p-value for a less accurate candidate (accuracy and recall only)." }) pValue!: number | null;
  @Field(() => GuardrailPairs, { nullable: true, description: 'The pairs behind accuracy and recall (null for the others, and in events recorded before pairs were kept).' }) pairs!: GuardrailPairs | null;
}

@ObjectType({ description: "An entry of a rollout's event log: a person's action or a controller decision, with its figures." })
export class RolloutEvent {
  @Field(() => Int) seq!: number;
  @Field() at!: Date;
  @Field({ description: 'started, paused, resumed, aborted, advanced, promoted, rolled_back.' }) kind!: string;
  @Field(() => Int, { description: '1-based step the rollout is at after the event.' }) step!: number;
  @Field(() => Float) trafficPercent!: number;
  @Field() actor!: string;
  @Field() reason!: string;
  @Field(() => [GuardrailFigure]) figures!: GuardrailFigure[];
}

@ObjectType({ description: 'A canary rollout of a candidate variant against a baseline.' })
export class Rollout {
  @Field(() => ID) id!: string;
  @Field() model!: string;
  @Field() candidate!: string;
  @Field(() => ID) candidateVariantId!: string;
  @Field() baseline!: string;
  @Field(() => ID) baselineVariantId!: string;
  @Field(() => RolloutStatusEnum) status!: RolloutStatusEnum;
  @Field(() => Int, { description: '1-based.' }) step!: number;
  @Field(() => Float, { description: "The candidate's share of primary traffic now." }) trafficPercent!: number;
  @Field(() => [RolloutStep]) steps!: RolloutStep[];
  @Field(() => RolloutGuardrails) guardrails!: RolloutGuardrails;
  @Field(() => Float, { description: "Share of each variant's answered requests the other shadows." }) shadowPercent!: number;
  @Field({ description: 'Whether steps wait for paired feedback (accuracy or recall).' }) requireFeedback!: boolean;
  @Field(() => String, { nullable: true, description: 'Why it is where it is (the last decision or action).' }) reason!: string | null;
  @Field() stepStartedAt!: Date;
  @Field() createdBy!: string;
  @Field() createdAt!: Date;
  @Field() updatedAt!: Date;
  @Field(() => Date, { nullable: true }) finishedAt!: Date | null;
}
