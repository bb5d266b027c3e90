import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { GraphQLConfig } from '../../config/config';
import type { GraphQLContext } from '../graphql-context';
import { callerOf, checkShape } from './query-limits';

/**
 * Applies the caller's depth, alias, directive and cost limits to every operation once it is
 * resolved. Apollo's `validationRules` are the same for everyone and are skipped for documents
 * it has cached (validated for some caller, not necessarily this one), so the check runs in a
 * request hook, which sees the principal and runs for every request. Tokens are counted before
 * this, when the context is made (`checkRequestTokens`): a throw from Apollo's source and parse
 * hooks would answer 500.
 * Field suggestions ("Did you mean ...") are masked for everyone but admins: they map the schema
 * for a caller who may not read it.
 */
export function queryLimitsPlugin(config: GraphQLConfig): ApolloServerPlugin<GraphQLContext> {
  const [suggestionMask] = new ApolloArmor({
    blockFieldSuggestion: { enabled: true },
    costLimit: { enabled: false },
    maxAliases: { enabled: false },
    maxDepth: { enabled: false },
    maxDirectives: { enabled: false },
    maxTokens: { enabled: false },
  }).protect().plugins as ApolloServerPlugin<GraphQLContext>[];
  return {
    async requestDidStart(start): Promise<GraphQLRequestListener<GraphQLContext>> {
      const caller = callerOf(start.contextValue.principal);
      const limits = config.limits[caller];
      const masking = caller === 'admin' ? undefined : await suggestionMask.requestDidStart?.(start);
      return {
        async didResolveOperation({ schema, document }) {
          const refused = checkShape(schema, document, caller, limits);
          if (refused) throw refused;
        },
        async didEncounterErrors(context) {
          await masking?.didEncounterErrors?.(context);
        },
      };
    },
  };
}
