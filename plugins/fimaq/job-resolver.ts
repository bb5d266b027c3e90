import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import { actorOf, type GraphQLContext } from '../../gateway/plugin-surface';
import { Model, Variant } from '../../schema/registry';
import type { RolloutPlanInput } from '../../schema/rollouts';
import type { JobStatus } from '../../workers/common/jobs/messages';
import { QuantizationJob, QuantizationJobStatusEnum, QuantizeModelInput, RETRIEVAL_REFERENCE_OF } from './graphql-types';
import type { JobRecord } from './job-record';
import type { FimaqConfig } from './fimaq-config';
import { JOB_UPDATED_TOPIC } from './job-topics';
import type { QuantizationService } from './quantization-service';

/** The GraphQL view of a job: the record flattened with the request's parameters. */
export function toGraphQLJob(job: JobRecord): QuantizationJob {
  const { spec } = job;
  return {
    ...job,
    method: spec.method,
    bits: spec.bits,
    calibSize: spec.calibSize,
    reconSize: spec.reconSize,
    iters: spec.iters,
    rank: spec.rank,
    seed: spec.seed,
  };
}

/** What the plugin's start hands its resolvers (its `resolverContext`). */
export interface FimaqResolverContext {
  config: FimaqConfig;
  service: QuantizationService;
}

@Resolver(() => QuantizationJob)
export class QuantizationJobResolver {
  constructor(private readonly context: FimaqResolverContext) {}

  @Authorized('admin')
  @Mutation(() => QuantizationJob, {
    description: 'Queues a quantization job for a model variant. Validates the model, variant and image sets first; returns the queued job.',
  })
  async quantizeModel(@Arg('input') input: QuantizeModelInput, @Ctx() context: GraphQLContext): Promise<QuantizationJob> {
    const job = await this.context.service.quantize(
      {
        model: input.model,
        baseVariant: input.baseVariant ?? null,
        method: input.method,
        bits: input.bits,
        calibration: { ...input.calibration },
        calibSize: input.calibSize,
        reconSize: input.reconSize ?? input.calibSize,
        iters: input.iters,
        rank: input.rank,
        seed: input.seed,
        evaluation: input.evaluation ? { ...input.evaluation } : null,
        shadow: input.shadow ?? this.context.config.shadowByDefault,
        // A plain copy: the plan is stored with the job as JSON.
        ...(input.rollout ? { rollout: JSON.parse(JSON.stringify(input.rollout)) as RolloutPlanInput } : {}),
        ...(input.reference ? { reference: RETRIEVAL_REFERENCE_OF[input.reference] } : {}),
      },
      input.idempotencyKey ?? null,
      actorOf(context).name,
    );
    return toGraphQLJob(job);
  }

  @Authorized('admin')
  @Mutation(() => QuantizationJob, { description: 'Cancels a queued or running job; its worker stops at the next progress step.' })
  async cancelQuantizationJob(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<QuantizationJob> {
    return toGraphQLJob(await this.context.service.cancel(id, actorOf(context).name));
  }

  @Authorized('viewer')
  @Query(() => QuantizationJob, { nullable: true, description: 'A job by id; null when there is none.' })
  async quantizationJob(@Arg('id', () => ID) id: string): Promise<QuantizationJob | null> {
    const job = await this.context.service.find(id);
    return job ? toGraphQLJob(job) : null;
  }

  @Authorized('viewer')
  @Query(() => [QuantizationJob], { description: 'Jobs, newest first, optionally of one model and in one status.' })
  async quantizationJobs(
    @Arg('model', () => String, { nullable: true }) model: string | undefined,
    @Arg('status', () => QuantizationJobStatusEnum, { nullable: true }) status: JobStatus | undefined,
  ): Promise<QuantizationJob[]> {
    return (await this.context.service.list(model ?? undefined, status ?? undefined)).map(toGraphQLJob);
  }

  @Authorized('viewer')
  @Subscription(() => QuantizationJob, {
    topics: JOB_UPDATED_TOPIC,
    topicId: ({ args }) => args.id,
    description: 'The job each time its status, stage or progress changes.',
  })
  quantizationJobUpdated(@Arg('id', () => ID) _id: string, @Root() job: JobRecord): QuantizationJob {
    return toGraphQLJob(job);
  }

  @FieldResolver(() => Model)
  async model(@Root() job: QuantizationJob, @Ctx() context: GraphQLContext): Promise<Model> {
    return (await context.loaders.modelById.load(job.modelId)) as unknown as Model;
  }

  @FieldResolver(() => Variant, { nullable: true, description: 'The variant the job produced.' })
  async variant(@Root() job: QuantizationJob, @Ctx() context: GraphQLContext): Promise<Variant | null> {
    return job.variantId ? ((await context.loaders.variantById.load(job.variantId)) as unknown as Variant) : null;
  }
}
