import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { GraphQLConfig } from '../../config/config';
import type { GraphQLContext } from '../graphql-context';
import { callerOf, checkShape, checkTokens } from './query-limits';

/**
 * Applies the caller's static limits to every operation. Apollo's `validationRules` are the
 * same for everyone and are skipped for documents it has cached, so the checks run in request
 * hooks, which see the principal and run for every request:
 * - tokens when the source is known, before Apollo parses it (a cached document was parsed for
 *   some caller, not necessarily this one);
 * - depth, aliases, directives and cost once the operation is resolved.
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
        async didResolveSource({ source }) {
          const refused = checkTokens(source, caller, limits);
          if (refused) throw refused;
        },
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
