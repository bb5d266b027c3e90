import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import { actorOf, type GraphQLContext, type RegistryService } from '../../gateway/plugin-surface';
import { StartRolloutInput } from '../../schema/rollouts';
import { Rollout, RolloutEvent, RolloutStatusEnum } from './graphql-types';
import type { RolloutRecord } from './rollout-record';
import { ROLLOUT_UPDATED_TOPIC, type RolloutAction, type RolloutService } from './rollout-service';

/** What the plugin's start hands its resolvers (its `resolverContext`). */
export interface RolloutsResolverContext {
  service: RolloutService;
  registry: RegistryService;
}

@Resolver(() => Rollout)
export class RolloutResolver {
  constructor(private readonly context: RolloutsResolverContext) {}

  /** The GraphQL view: variant tags and the plan's current step beside the record. */
  private async view(record: RolloutRecord): Promise<Rollout> {
    const { registry } = this.context;
    const [model, candidate, baseline] = await Promise.all([
      registry.getModelById(record.modelId),
      registry.getVariant(record.candidateVariantId),
      registry.getVariant(record.baselineVariantId),
    ]);
    return {
      ...record,
      model: model.name,
      candidate: candidate.tag,
      baseline: baseline.tag,
      status: record.status as RolloutStatusEnum,
      step: record.stepIndex + 1,
      trafficPercent: record.plan.steps[record.stepIndex].trafficPercent,
      steps: record.plan.steps.map((s) => ({ trafficPercent: s.trafficPercent, minRequests: s.minRequests, minDuration: s.minDurationSeconds, maxDuration: s.maxDurationSeconds ?? null })),
      guardrails: record.plan.guardrails,
      shadowPercent: record.plan.shadowPercent,
      requireFeedback: record.plan.requireFeedback,
    };
  }

  @Authorized('admin')
  @Mutation(() => Rollout, {
    description: 'Starts a canary rollout: the candidate takes each step\'s share of traffic while its guardrails hold, is promoted after the last step, and is rolled back when one is violated. CONFLICT while the model has a live rollout.',
  })
  async startRollout(@Arg('input') input: StartRolloutInput, @Ctx() context: GraphQLContext): Promise<Rollout> {
    return this.view(await this.context.service.start(input, actorOf(context).name));
  }

  @Authorized('admin')
  @Mutation(() => Rollout, { description: 'Stops decisions of a running rollout; traffic stays at the current step.' })
  pauseRollout(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Rollout> {
    return this.act(id, 'pause', context);
  }

  @Authorized('admin')
  @Mutation(() => Rollout, { description: 'Lets the controller decide again on a paused rollout.' })
  resumeRollout(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Rollout> {
    return this.act(id, 'resume', context);
  }

  @Authorized('admin')
  @Mutation(() => Rollout, { description: 'Ends a live rollout and sends all traffic to the baseline.' })
  abortRollout(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Rollout> {
    return this.act(id, 'abort', context);
  }

  @Authorized('admin')
  @Mutation(() => Rollout, { description: 'Ends a live rollout now by making the candidate the default route, whatever the evidence.' })
  promoteRollout(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Rollout> {
    return this.act(id, 'promote', context);
  }

  @Authorized('viewer')
  @Query(() => Rollout, { nullable: true, description: 'A rollout by id; null when there is none.' })
  async rollout(@Arg('id', () => ID) id: string): Promise<Rollout | null> {
    const record = await this.context.service.find(id);
    return record ? this.view(record) : null;
  }

  @Authorized('viewer')
  @Query(() => [Rollout], { description: 'Rollouts, newest first (at most 100), optionally of one model and in one status.' })
  async rollouts(
    @Arg('model', () => String, { nullable: true }) model: string | undefined,
    @Arg('status', () => RolloutStatusEnum, { nullable: true }) status: RolloutStatusEnum | undefined,
  ): Promise<Rollout[]> {
    const records = await this.context.service.list(model ?? undefined, status ?? undefined);
    return Promise.all(records.map((r) => this.view(r)));
  }

  @Authorized('viewer')
  @Subscription(() => Rollout, {
    topics: ROLLOUT_UPDATED_TOPIC,
    topicId: ({ args }) => args.id,
    description: 'The rollout each time its state changes (a step, a decision, an action).',
  })
  rolloutUpdated(@Arg('id', () => ID) _id: string, @Root() record: RolloutRecord): Promise<Rollout> {
    return this.view(record);
  }

  @FieldResolver(() => [RolloutEvent], { description: 'The event log, oldest first: actions and decisions with their figures.' })
  async events(@Root() rollout: Rollout): Promise<RolloutEvent[]> {
    const events = await this.context.service.events(rollout.id);
    return events.map((e) => ({ ...e, step: e.stepIndex + 1 }));
  }

  private async act(id: string, action: RolloutAction, context: GraphQLContext): Promise<Rollout> {
    return this.view(await this.context.service.act(id, action, actorOf(context).name));
  }
}
