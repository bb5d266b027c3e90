import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Model, RegisterModelInput, RegisterModelResult, Variant } from '../../../schema/registry';
import type { PluginContext } from '../../plugins/plugin-api';
import type { ModelRecord, VariantRecord } from '../../registry/registry-types';
import type { RegistryService } from '../../registry/registry-service';
import { actorOf, type GraphQLContext } from '../graphql-context';

// Records and GraphQL classes share their shape; the enums are the same strings.
const asModel = (m: ModelRecord) => m as unknown as Model;
const asVariant = (v: VariantRecord) => v as unknown as Variant;

@Resolver(() => Model)
export class ModelResolver {
  private readonly registry: RegistryService;

  constructor(context: PluginContext) {
    this.registry = context.registry;
  }

  @Authorized('viewer')
  @Query(() => [Model], { description: 'Every registered model, by name.' })
  async models(): Promise<Model[]> {
    return (await this.registry.listModels()).map(asModel);
  }

  @Authorized('viewer')
  @Query(() => Model, { nullable: true, description: 'A model by name; null when there is none.' })
  async model(@Arg('name') name: string): Promise<Model | null> {
    const model = await this.registry.findModel(name);
    return model ? asModel(model) : null;
  }

  @Authorized('admin')
  @Mutation(() => RegisterModelResult, {
    description: 'Registers an ONNX image model. The file is loaded with onnxruntime and checked against the task and labels.',
  })
  async registerModel(@Arg('input') input: RegisterModelInput, @Ctx() context: GraphQLContext): Promise<RegisterModelResult> {
    const { model, variant } = await this.registry.registerModel(input, actorOf(context));
    return { model: asModel(model), variant: asVariant(variant) };
  }

  @Authorized('admin')
  @Mutation(() => Model, {
    description:
      "Replaces a model's labels (class names in output order); a classifier needs one per class. Audited; serving answers with the new names at once.",
  })
  async setModelLabels(
    @Arg('model') model: string,
    @Arg('labels', () => [String]) labels: string[],
    @Ctx() context: GraphQLContext,
  ): Promise<Model> {
    return asModel(await this.registry.setModelLabels(model, labels, actorOf(context)));
  }

  @FieldResolver(() => [Variant], { description: 'Variants in creation order; retired ones included.' })
  async variants(@Root() model: Model, @Ctx() context: GraphQLContext): Promise<Variant[]> {
    return (await context.loaders.variantsByModelId.load(model.id)).map(asVariant);
  }
}

@Resolver(() => Variant)
export class VariantResolver {
  private readonly registry: RegistryService;

  constructor(context: PluginContext) {
    this.registry = context.registry;
  }

  @Authorized('viewer')
  @Query(() => Variant, { nullable: true, description: 'A variant by id; null when there is none.' })
  async variant(@Arg('id', () => ID) id: string): Promise<Variant | null> {
    const variant = await this.registry.findVariant(id);
    return variant ? asVariant(variant) : null;
  }

  @Authorized('admin')
  @Mutation(() => Variant, { description: 'Stops serving a variant for good. Retiring a retired variant is a no-op.' })
  async retireVariant(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Variant> {
    return asVariant(await this.registry.retireVariant(id, actorOf(context)));
  }

  @FieldResolver(() => Model)
  async model(@Root() variant: Variant, @Ctx() context: GraphQLContext): Promise<Model> {
    return asModel(await context.loaders.modelById.load(variant.modelId));
  }

  @FieldResolver(() => Variant, { nullable: true })
  async parent(@Root() variant: Variant, @Ctx() context: GraphQLContext): Promise<Variant | null> {
    if (!variant.parentVariantId) return null;
    return asVariant(await context.loaders.variantById.load(variant.parentVariantId));
  }
}
