import { GraphQLError } from 'graphql';
import type { AuthChecker } from 'type-graphql';
import { roleAllows, type Role } from '../auth/roles';
import type { GraphQLContext } from './graphql-context';

/** `@Authorized('viewer')` and friends: missing token → UNAUTHENTICATED, wrong role → FORBIDDEN. */
export const authChecker: AuthChecker<GraphQLContext, Role> = ({ context }, roles) => {
  const principal = context.principal;
  if (!principal) {
    throw new GraphQLError('this operation needs a bearer token (Authorization: Bearer <token>)', {
      extensions: { code: 'UNAUTHENTICATED' },
    });
  }
  if (roles.length === 0 || roles.some((role) => roleAllows(principal.role, role))) return true;
  throw new GraphQLError(`this operation needs the ${roles.join(' or ')} role; token "${principal.name}" has ${principal.role}`, {
    extensions: { code: 'FORBIDDEN' },
  });
};
