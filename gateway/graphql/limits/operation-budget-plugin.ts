import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { GraphQLConfig } from '../../config/config';
import type { GraphQLContext } from '../graphql-context';

export const OPERATION_BUDGET_EXCEEDED = 'OPERATION_BUDGET_EXCEEDED';

/**
 * A ceiling on what one query may do once it runs, whatever the static limits let through
 * (they cannot know how many rows a list holds): after `operationMaxFields` resolved fields or
 * `operationBudgetMs` since execution started, every further field fails at once with
 * OPERATION_BUDGET_EXCEEDED. Fields already resolved keep their values, as for any field error;
 * the answer carries the budget error once rather than at every field it cut.
 */
export function operationBudgetPlugin(config: Pick<GraphQLConfig, 'operationMaxFields' | 'operationBudgetMs'>): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart(): Promise<GraphQLRequestListener<GraphQLContext>> {
      let exceeded: GraphQLError | undefined;
      return {
        async executionDidStart({ operation }) {
          // A mutation is not cut short: stopping it after its change is made would report a
          // failure for a change that happened. Mutations need the admin role and stay within
          // the admin's static limits.
          if (operation.operation !== 'query') return undefined;
          const deadline = performance.now() + config.operationBudgetMs;
          let resolved = 0;
          return {
            willResolveField() {
              if (!exceeded) {
                resolved++;
                if (resolved > config.operationMaxFields) {
                  exceeded = budgetError(`the operation resolved more than ${config.operationMaxFields} fields (GRAPHQL_OPERATION_MAX_FIELDS)`);
                } else if (performance.now() > deadline) {
                  exceeded = budgetError(`the operation ran longer than ${config.operationBudgetMs} ms (GRAPHQL_OPERATION_BUDGET_MS)`);
                }
              }
              if (exceeded) throw exceeded;
            },
          };
        },
        async willSendResponse({ response }) {
          if (!exceeded || response.body.kind !== 'single' || !response.body.singleResult.errors) return;
          const { errors } = response.body.singleResult;
          const first = errors.find((e) => e.extensions?.code === OPERATION_BUDGET_EXCEEDED);
          response.body.singleResult.errors = [
            ...(first ? [{ message: first.message, extensions: { code: OPERATION_BUDGET_EXCEEDED } }] : []),
            ...errors.filter((e) => e.extensions?.code !== OPERATION_BUDGET_EXCEEDED),
          ];
        },
      };
    },
  };
}

function budgetError(reason: string): GraphQLError {
  return new GraphQLError(`operation stopped: ${reason}; ask for fewer fields or rows`, {
    extensions: { code: OPERATION_BUDGET_EXCEEDED },
  });
}
