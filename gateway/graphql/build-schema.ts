import type { GraphQLSchema } from 'graphql';
import { buildSchema, type NonEmptyArray, type PubSub } from 'type-graphql';
import type { GatewayPlugin, ResolverClass } from '../plugins/plugin-api';
import { authChecker } from './auth-checker';
import { InProcessPubSub } from './pubsub';
import { AccessResolver } from './resolvers/access-resolver';
import { MetricsResolver } from './resolvers/metrics-resolver';
import { ModelResolver, VariantResolver } from './resolvers/model-resolver';
import { ServingResolver } from './resolvers/serving-resolver';

export const CORE_RESOLVERS: readonly ResolverClass[] = [ModelResolver, VariantResolver, AccessResolver, ServingResolver, MetricsResolver];

/** Resolver instances by class, built once with the context of whoever contributed the class (the core or a plugin). */
export class ResolverContainer {
  private readonly instances = new Map<ResolverClass, object>();

  add(classes: readonly ResolverClass[], context: unknown): void {
    // A plugin's resolvers take what its own `start` returned; the gateway cannot type that link.
    for (const cls of classes) this.instances.set(cls, new cls(context as never));
  }

  get(cls: unknown): object {
    const instance = this.instances.get(cls as ResolverClass);
    if (!instance) throw new Error(`resolver ${(cls as { name?: string }).name} was never constructed`);
    return instance;
  }
}

/** The control plane's schema: the core resolvers plus every plugin's, in plugin order. */
export function buildGatewaySchema(
  plugins: readonly GatewayPlugin[],
  container?: ResolverContainer,
  pubSub: PubSub = new InProcessPubSub(),
): Promise<GraphQLSchema> {
  const resolvers = [...CORE_RESOLVERS, ...plugins.flatMap((p) => p.resolvers ?? [])];
  return buildSchema({
    resolvers: resolvers as unknown as NonEmptyArray<ResolverClass>,
    authChecker,
    container: container ? { get: (cls) => container.get(cls) } : undefined,
    pubSub,
    validate: { forbidUnknownValues: false },
  });
}
