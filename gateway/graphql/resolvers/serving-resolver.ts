import { Arg, Authorized, Ctx, Int, Mutation, Query, Resolver } from 'type-graphql';
import { Variant } from '../../../schema/registry';
import { AddVariantInput, Gallery, TrafficPolicy, TrafficPolicyInput, VariantMetricsMinute } from '../../../schema/serving';
import { badInput } from '../../errors';
import type { PluginContext } from '../../plugins/plugin-api';
import type { RegistryService } from '../../registry/registry-service';
import type { ModelTask, VariantRecord } from '../../registry/registry-types';
import { latencyQuantile, type RollupRow } from '../../serving/metric-rollups';
import type { ModelServingState } from '../../serving/serving-catalog';
import type { Serving } from '../../serving/serving';
import type { TrafficPolicy as Policy } from '../../serving/traffic-policy';
import { actorOf, type GraphQLContext } from '../graphql-context';

const ratio = (part: number, whole: number) => (whole > 0 ? part / whole : null);

function toPolicy(state: ModelServingState): TrafficPolicy {
  const tagOf = (id: string) => state.variants.find((v) => v.id === id)?.tag ?? id;
  const { policy } = state;
  return {
    model: state.model.name,
    version: state.policyVersion,
    routes: policy.routes.map((r) => ({ ...r, variantTag: tagOf(r.variantId) })),
    shadows: policy.shadows.map((s) => ({ ...s, variantTag: tagOf(s.variantId) })),
    stickyHeader: policy.stickyHeader,
    batching: policy.batching,
    updatedBy: state.policyUpdatedBy,
    updatedAt: state.policyUpdatedAt,
  };
}

/** The input with variant tags resolved to ids; BAD_USER_INPUT for a variant the model lacks. */
function policyOf(input: TrafficPolicyInput, variants: readonly VariantRecord[], model: string): Policy {
  const idOf = (ref: string) => {
    const variant = variants.find((v) => v.tag === ref) ?? variants.find((v) => v.id === ref);
    if (!variant) throw badInput(`model ${model} has no variant "${ref}"`);
    return variant.id;
  };
  return {
    routes: input.routes.map((r) => ({ variantId: idOf(r.variant), weight: r.weight })),
    shadows: (input.shadows ?? []).map((s) => ({ variantId: idOf(s.variant), mirrorPercent: s.mirrorPercent })),
    stickyHeader: input.stickyHeader ?? null,
    batching: input.batching ? { maxBatchSize: input.batching.maxBatchSize, maxQueueDelayMs: input.batching.maxQueueDelayMs } : null,
  };
}

function toMinute(row: RollupRow, tag: string, task: ModelTask): VariantMetricsMinute {
  const classification = task === 'CLASSIFICATION';
  return {
    minute: row.minute,
    variantId: row.variantId,
    variantTag: tag,
    requests: row.requests,
    errors: row.errors,
    shadowRequests: row.shadowRequests,
    shadowErrors: row.shadowErrors,
    meanLatencyMs: ratio(row.latencyMsSum, row.requests - row.errors),
    p50LatencyMs: latencyQuantile(row.latencyBuckets, 0.5),
    p95LatencyMs: latencyQuantile(row.latencyBuckets, 0.95),
    meanComputeMs: ratio(row.computeMsSum, row.requests - row.errors + row.shadowRequests - row.shadowErrors),
    compared: row.compared,
    top1Agreement: classification ? ratio(row.agreed, row.compared) : null,
    meanKlDivergence: classification ? ratio(row.klSum, row.compared) : null,
    meanTop1ProbabilityDelta: classification ? ratio(row.top1DeltaSum, row.compared) : null,
    meanCosine: classification ? null : ratio(row.cosineSum, row.compared),
    meanOverlapAtK: classification ? null : ratio(row.overlapSum, row.overlapCompared),
    feedback: row.feedback,
    correct: row.correct,
    accuracy: ratio(row.correct, row.feedback),
  };
}

/** The data plane's control: traffic policies, hand-made variants, per-minute serving figures. */
@Resolver()
export class ServingResolver {
  private readonly serving: Serving;
  private readonly registry: RegistryService;

  constructor(context: PluginContext) {
    this.serving = context.serving;
    this.registry = context.registry;
  }

  @Authorized('viewer')
  @Query(() => Gallery, { description: "A retrieval model's stored gallery and how far each variant has embedded it." })
  async gallery(@Arg('model') model: string): Promise<Gallery> {
    const status = await this.serving.dataPlane.gallery(model);
    return { model, size: status.size, revision: status.revision, embeddings: status.embeddings };
  }

  @Authorized('viewer')
  @Query(() => TrafficPolicy, { description: "The model's traffic policy (the default one when none was set)." })
  async trafficPolicy(@Arg('model') model: string): Promise<TrafficPolicy> {
    return toPolicy(await this.serving.catalog.get(model));
  }

  @Authorized('admin')
  @Mutation(() => TrafficPolicy, {
    description:
      'Replaces the traffic policy atomically: requests in flight finish as routed, later ones follow the new policy. ' +
      'With expectedVersion, fails with CONFLICT (changing nothing) unless the stored policy is still at that version.',
  })
  async setTrafficPolicy(
    @Arg('model') model: string,
    @Arg('policy', () => TrafficPolicyInput) input: TrafficPolicyInput,
    @Arg('expectedVersion', () => Int, {
      nullable: true,
      description: 'The version this policy was based on (from trafficPolicy); omit it to replace whatever is stored.',
    })
    expectedVersion: number | null | undefined,
    @Ctx() context: GraphQLContext,
  ): Promise<TrafficPolicy> {
    const written = await this.serving.trafficPolicies.update(model, ({ variants }) => policyOf(input, variants, model), {
      actor: actorOf(context).name,
      expectedVersion: expectedVersion ?? undefined,
    });
    return toPolicy(written);
  }

  @Authorized('admin')
  @Mutation(() => Variant, { description: 'Registers an uploaded ONNX file as a new variant of a model, checked like the original.' })
  async addVariant(@Arg('input', () => AddVariantInput) input: AddVariantInput, @Ctx() context: GraphQLContext): Promise<Variant> {
    const model = await this.registry.getModel(input.model);
    const root = (await this.registry.listVariants(model.id)).find((v) => v.parentVariantId === null);
    const variant = await this.registry.addVariant(
      {
        modelId: model.id,
        parentVariantId: input.parentVariantId ?? root?.id ?? null,
        tag: input.tag,
        precision: input.precision,
        method: input.method,
        config: {},
        metrics: {},
        artifactSha256: input.artifactSha256,
        status: input.status,
      },
      actorOf(context),
    );
    return variant as unknown as Variant;
  }

  @Authorized('viewer')
  @Query(() => [VariantMetricsMinute], { description: "Per-minute serving figures of a model's variants since a time, oldest first." })
  async variantMetrics(
    @Arg('model') model: string,
    @Arg('since', () => Date) since: Date,
    @Arg('variant', () => String, { nullable: true, description: 'Variant tag or id; all variants when omitted.' }) variant?: string | null,
  ): Promise<VariantMetricsMinute[]> {
    const state = await this.serving.catalog.get(model);
    // This replica's current minute is still in memory; write it so the answer includes it.
    await this.serving.flushRollups();
    const rows = await this.serving.rollups.query(state.model.id, since);
    const tags = new Map(state.variants.map((v) => [v.id, v.tag]));
    return rows
      .filter((row) => !variant || row.variantId === variant || tags.get(row.variantId) === variant)
      .map((row) => toMinute(row, tags.get(row.variantId) ?? row.variantId, state.model.task));
  }
}
