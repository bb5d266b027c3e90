import type { Principal } from '../auth/roles';

export interface GraphQLContext {
  /** Undefined when the request carried no token (and auth is enabled). */
  principal: Principal | undefined;
  requestId: string;
}

/** The actor recorded in the audit log for changes made through this request. */
export function actorOf(context: GraphQLContext): { name: string } {
  return { name: context.principal?.name ?? 'anonymous' };
}
