import type { Principal } from '../auth/roles';
import type { RegistryService } from '../registry/registry-service';
import { createRegistryLoaders, type RegistryLoaders } from './registry-loaders';

export interface GraphQLContext {
  /** Undefined when the request carried no token (and auth is enabled). */
  principal: Principal | undefined;
  requestId: string;
  /** Batched registry reads for field resolvers, fresh for every request. */
  loaders: RegistryLoaders;
}

/** A query's or mutation's context; `subscription: true` for one that lives across many events. */
export function createGraphQLContext(
  principal: Principal | undefined,
  requestId: string,
  registry: RegistryService,
  options: { subscription: boolean } = { subscription: false },
): GraphQLContext {
  return { principal, requestId, loaders: createRegistryLoaders(registry, { cache: !options.subscription }) };
}

/** The actor recorded in the audit log for changes made through this request. */
export function actorOf(context: GraphQLContext): { name: string } {
  return { name: context.principal?.name ?? 'anonymous' };
}
