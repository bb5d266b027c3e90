import { IsIn, IsInt, IsOptional, Length, Matches, Max, Min, ValidateNested } from 'class-validator';
import { Field, Float, ID, InputType, Int, ObjectType } from 'type-graphql';

@ObjectType({ description: 'A share of primary traffic.' })
export class TrafficRoute {
  @Field(() => ID) variantId!: string;
  @Field() variantTag!: string;
  @Field(() => Float, { description: 'Relative weight; shares are weight / sum of weights of the ready variants.' }) weight!: number;
}

@ObjectType({ description: 'A variant that receives a mirrored copy of requests; its answers are only compared.' })
export class ShadowRoute {
  @Field(() => ID) variantId!: string;
  @Field() variantTag!: string;
  @Field(() => Float, { description: 'Share of requests mirrored, 0..100.' }) mirrorPercent!: number;
}

@ObjectType({ description: 'Dynamic batching: requests merged along the batch dimension into one onnxruntime run.' })
export class Batching {
  @Field(() => Int, { description: 'Rows per run; 1 turns batching off.' }) maxBatchSize!: number;
  @Field(() => Float, { description: 'How long the first waiting request may wait for company, in ms.' }) maxQueueDelayMs!: number;
}

@ObjectType({ description: "How a model's requests without a version path are served." })
export class TrafficPolicy {
  @Field() model!: string;
  @Field(() => Int, { description: 'Counts changes; 0 is the default policy (all traffic to the original variant).' }) version!: number;
  @Field(() => [TrafficRoute]) routes!: TrafficRoute[];
  @Field(() => [ShadowRoute]) shadows!: ShadowRoute[];
  @Field(() => String, { nullable: true, description: 'Requests with equal values of this header reach the same variant; null: random.' })
  stickyHeader!: string | null;
  @Field(() => Batching, { nullable: true, description: 'Null: the gateway default (SERVING_BATCH_MAX_SIZE, SERVING_BATCH_MAX_DELAY_MS).' })
  batching!: Batching | null;
  @Field(() => String, { nullable: true }) updatedBy!: string | null;
  @Field(() => Date, { nullable: true }) updatedAt!: Date | null;
}

@InputType()
export class TrafficRouteInput {
  @Field({ description: 'Variant tag or id.' }) @Length(1, 128) variant!: string;
  @Field(() => Float) @Min(0) weight!: number;
}

@InputType()
export class ShadowRouteInput {
  @Field({ description: 'Variant tag or id.' }) @Length(1, 128) variant!: string;
  @Field(() => Float, { defaultValue: 100 }) @Min(0) @Max(100) mirrorPercent!: number;
}

@InputType()
export class BatchingInput {
  @Field(() => Int) @IsInt() @Min(1) @Max(1024) maxBatchSize!: number;
  @Field(() => Float, { defaultValue: 2 }) @Min(0) @Max(1000) maxQueueDelayMs!: number;
}

@InputType({ description: 'Replaces the whole policy; it applies to requests that arrive after the change.' })
export class TrafficPolicyInput {
  @Field(() => [TrafficRouteInput]) @ValidateNested() routes!: TrafficRouteInput[];
  @Field(() => [ShadowRouteInput], { defaultValue: [] }) @ValidateNested() shadows!: ShadowRouteInput[];
  @Field(() => String, { nullable: true, defaultValue: 'x-routing-key' })
  @IsOptional()
  @Matches(/^[a-z0-9-]{1,64}$/)
  stickyHeader!: string | null;
  @Field(() => BatchingInput, { nullable: true }) @IsOptional() @ValidateNested() batching?: BatchingInput | null;
}

@InputType({ description: 'A hand-made variant (for example quantized elsewhere) served beside the model.' })
export class AddVariantInput {
  @Field() @Length(1, 64) model!: string;
  @Field() @Length(1, 64) tag!: string;
  @Field({ description: 'SHA-256 returned by POST /v1/artifacts.' }) artifactSha256!: string;
  @Field(() => ID, { nullable: true, description: 'Defaults to the variant the model was registered with.' })
  @IsOptional()
  parentVariantId?: string;
  @Field({ defaultValue: 'FP32' }) @Length(1, 32) precision!: string;
  @Field({ defaultValue: 'upload' }) @Length(1, 64) method!: string;
  @Field(() => String, { defaultValue: 'ready' }) @IsIn(['registered', 'ready']) status!: 'registered' | 'ready';
}

@ObjectType({ description: "One variant's serving figures for one minute, summed over gateway replicas." })
export class VariantMetricsMinute {
  @Field() minute!: Date;
  @Field(() => ID) variantId!: string;
  @Field() variantTag!: string;
  @Field(() => Int, { description: 'Requests this variant answered (failed ones included).' }) requests!: number;
  @Field(() => Int) errors!: number;
  @Field(() => Int, { description: 'Mirrored requests this variant ran as a shadow.' }) shadowRequests!: number;
  @Field(() => Int) shadowErrors!: number;
  @Field(() => Float, { nullable: true }) meanLatencyMs!: number | null;
  @Field(() => Float, { nullable: true, description: 'Upper bound of the latency bucket holding the median.' }) p50LatencyMs!: number | null;
  @Field(() => Float, { nullable: true }) p95LatencyMs!: number | null;
  @Field(() => Float, { nullable: true, description: 'onnxruntime time per request (answered and shadowed).' }) meanComputeMs!: number | null;
  @Field(() => Int, { description: 'Rows compared with the answering variant while shadowing.' }) compared!: number;
  @Field(() => Float, { nullable: true, description: 'Classification: share of compared rows with the same top-1 class.' }) top1Agreement!: number | null;
  @Field(() => Float, { nullable: true, description: 'Classification: mean KL(p_answered || p_this).' }) meanKlDivergence!: number | null;
  @Field(() => Float, { nullable: true }) meanTop1ProbabilityDelta!: number | null;
  @Field(() => Float, { nullable: true, description: 'Retrieval: mean cosine of the embeddings.' }) meanCosine!: number | null;
  @Field(() => Float, { nullable: true, description: 'Retrieval: mean overlap@10 of gallery neighbours.' }) meanOverlapAtK!: number | null;
  @Field(() => Int, { description: 'Rows with ground truth from /feedback.' }) feedback!: number;
  @Field(() => Int) correct!: number;
  @Field(() => Float, { nullable: true }) accuracy!: number | null;
}

@ObjectType({ description: "How far one variant's embedding of a retrieval gallery has come." })
export class GalleryEmbedding {
  @Field(() => ID) variantId!: string;
  @Field() variantTag!: string;
  @Field(() => Int) embedded!: number;
  @Field(() => Int) total!: number;
}

@ObjectType({ description: "A retrieval model's gallery: stored, shared by every replica, embedded by each variant that serves." })
export class Gallery {
  @Field() model!: string;
  @Field(() => Int, { description: 'Items stored.' }) size!: number;
  @Field(() => Int, { description: 'Raised by every upload; 0 before the first.' }) revision!: number;
  @Field(() => [GalleryEmbedding], { description: 'Embeddings computed or under way on this replica, by variant.' }) embeddings!: GalleryEmbedding[];
}
