import type http from 'node:http';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import type { RequestHandler } from 'express';
import { GraphQLError, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import { GatewayError } from '../errors';
import type { RequestAuthenticator } from '../http/http-auth';
import type { GraphQLContext } from './graphql-context';

function originalError(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError && current.originalError) current = current.originalError;
  return current;
}

/**
 * User errors keep their message and get their code; anything unexpected is logged and masked,
 * so internals never leak to callers.
 */
export function formatError(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const cause = originalError(error);
    if (cause instanceof GatewayError) {
      return { ...formatted, message: cause.message, extensions: { ...formatted.extensions, code: cause.code } };
    }
    const code = formatted.extensions?.code;
    if (code && code !== 'INTERNAL_SERVER_ERROR') return formatted;
    logger.error({ err: cause, path: formatted.path }, 'GraphQL resolver failed');
    return { message: 'internal error; the gateway log has the details', path: formatted.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

export async function startGraphQL(options: {
  schema: GraphQLSchema;
  httpServer: http.Server;
  auth: RequestAuthenticator;
  logger: Logger;
  extraPlugins?: ApolloServerPlugin<GraphQLContext>[];
}): Promise<{ middleware: RequestHandler; stop: () => Promise<void> }> {
  const apollo = new ApolloServer<GraphQLContext>({
    schema: options.schema,
    formatError: formatError(options.logger),
    introspection: true,
    // The composition root owns shutdown; Apollo's own signal handlers would stop it a second
    // time and re-raise the signal, leaving the process hanging.
    stopOnTerminationSignals: false,
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer }), ...(options.extraPlugins ?? [])],
  });
  await apollo.start();
  const middleware = expressMiddleware(apollo, {
    context: async ({ req, res }) => {
      try {
        return { principal: await options.auth.principalOf(req), requestId: String(res.locals.requestId) };
      } catch (error) {
        if (error instanceof GatewayError) {
          throw new GraphQLError(error.message, { extensions: { code: error.code, http: { status: error.httpStatus } } });
        }
        throw error;
      }
    },
  });
  return { middleware, stop: () => apollo.stop() };
}
