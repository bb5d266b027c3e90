import { Field, Float, InputType, Int } from 'type-graphql';

/**
 * The rollout plan as GraphQL takes it: by `startRollout`, and by `quantizeModel(rollout:)`,
 * which hands it to the rollouts plugin when its job succeeds. Absent fields take the defaults;
 * a guardrail given as null is switched off. The plugin validates it (clear BAD_USER_INPUT).
 */
@InputType({ description: 'One traffic step of a rollout.' })
export class RolloutStepInput {
  @Field(() => Float, { description: 'Share of primary traffic the candidate answers, 0..100; steps increase strictly and the last is 100.' })
  trafficPercent!: number;
  @Field(() => Int, { defaultValue: 1000, description: 'Requests the model must serve during the step before it may advance.' })
  minRequests!: number;
  @Field(() => Int, { defaultValue: 300, description: 'Seconds the step must last before it may advance.' })
  minDuration!: number;
  @Field(() => Int, { nullable: true, description: 'Seconds after which a step that has not passed (guardrails not shown to hold, minimums not met) is rolled back. Default null: it holds as long as it takes.' })
  maxDuration?: number | null;
}

@InputType({ description: 'What must hold for the candidate to advance, each judged at the confidence. null switches a guardrail off.' })
export class RolloutGuardrailsInput {
  @Field(() => Float, { nullable: true, description: 'Classifiers: largest accepted top-1 accuracy drop on the same rows with feedback (0.01 = one point). Default 0.01.' })
  maxAccuracyDrop?: number | null;
  @Field(() => Float, { nullable: true, description: 'Classifiers: smallest accepted top-1 agreement between candidate and baseline. Default 0.95.' })
  minAgreement?: number | null;
  @Field(() => Float, { nullable: true, description: 'Retrieval: smallest accepted mean overlap@k (k: SERVING_RETRIEVAL_K, default 10) of the candidate\'s and the baseline\'s gallery neighbours, in [0, 1]. Default 0.5.' })
  minOverlapAtK?: number | null;
  @Field(() => Float, { nullable: true, description: 'Retrieval: smallest accepted mean cosine between the candidate\'s and the baseline\'s embedding of a row, in [-1, 1]. Default 0.95.' })
  minCosine?: number | null;
  @Field(() => Float, { nullable: true, description: 'Retrieval: largest accepted recall@k drop on the same queries with feedback (0.01 = one point). Default 0.01.' })
  maxRecallDrop?: number | null;
  @Field(() => Float, { nullable: true, description: 'Largest accepted p99 latency ratio, candidate / baseline. Default 1.5.' })
  maxLatencyRatio?: number | null;
  @Field(() => Float, { nullable: true, description: "Largest accepted share of the candidate's requests that fail. Default 0.01." })
  maxErrorRate?: number | null;
  @Field(() => Float, { nullable: true, description: 'Confidence of every decision, in (0, 1). Default 0.95.' })
  confidence?: number | null;
}

@InputType({ description: 'Steps and guardrails of a rollout; everything has a default (steps 5/25/50/100 %, confidence 0.95).' })
export class RolloutPlanInput {
  @Field(() => [RolloutStepInput], { nullable: true }) steps?: RolloutStepInput[] | null;
  @Field(() => RolloutGuardrailsInput, { nullable: true }) guardrails?: RolloutGuardrailsInput | null;
  @Field(() => Boolean, { nullable: true, description: 'Start with a 0 % step in which the candidate only shadows.' })
  shadowFirst?: boolean | null;
  @Field(() => Float, { nullable: true, description: "Share (0..100) of each variant's answered requests the other shadows, for agreement and paired feedback. Default 100: every request is compared, at the cost of a second run in idle CPU." })
  shadowPercent?: number | null;
  @Field(() => Boolean, { nullable: true, description: 'Steps wait for paired feedback: maxAccuracyDrop (classifiers) or maxRecallDrop (encoders) is not conclusive until feedback shows it holds. Default false: without feedback that guardrail is inapplicable and a step may pass on the others.' })
  requireFeedback?: boolean | null;
}

@InputType({ description: 'A canary rollout of a candidate variant against a baseline.' })
export class StartRolloutInput extends RolloutPlanInput {
  @Field({ description: 'Model name.' }) model!: string;
  @Field({ description: 'Variant tag or id to roll out.' }) candidate!: string;
  @Field(() => String, { nullable: true, description: 'Variant tag or id it is compared with and falls back to; default: the variant the model routes to now.' })
  baseline?: string | null;
}

/**
 * What the rollouts plugin offers other plugins (through the gateway's plugin services, under
 * ROLLOUT_STARTER), so `quantizeModel(rollout:)` can check a plan when the job is asked for and
 * start the rollout when its variant is ready, without importing the plugin.
 */
export interface RolloutStarter {
  /** Throws BAD_USER_INPUT for a plan `startRollout` would refuse; writes nothing. */
  checkPlan(plan: RolloutPlanInput): void;
  /** Starts a rollout of a ready variant; returns the rollout's id. */
  startRollout(input: StartRolloutInput, actor: string): Promise<string>;
}

export const ROLLOUT_STARTER = 'rollouts.starter';
