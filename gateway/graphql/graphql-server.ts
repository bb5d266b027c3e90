import type http from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import type { RequestHandler } from 'express';
import { GraphQLError, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import type { RateLimiter } from '../auth/rate-limits';
import { GatewayError, RetryLaterError } from '../errors';
import type { GraphQLConfig } from '../config/config';
import type { RequestAuthenticator } from '../http/http-auth';
import type { RegistryService } from '../registry/registry-service';
import { createGraphQLContext, type GraphQLContext } from './graphql-context';
import { offlineLandingPage } from './landing-page';
import { operationBudgetPlugin } from './limits/operation-budget-plugin';
import { callerOf, checkRequestTokens } from './limits/query-limits';
import { queryLimitsPlugin } from './limits/query-limits-plugin';

function originalError(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError && current.originalError) current = current.originalError;
  return current;
}

/** Extensions that show the gateway's internals: only with the GATEWAY_DEBUG_ERRORS switch. */
const DEBUG_EXTENSIONS = ['stacktrace', 'exception'];

function withoutDebugExtensions(formatted: GraphQLFormattedError): GraphQLFormattedError {
  if (!formatted.extensions) return formatted;
  const extensions = Object.fromEntries(Object.entries(formatted.extensions).filter(([key]) => !DEBUG_EXTENSIONS.includes(key)));
  return { ...formatted, extensions };
}

/**
 * User errors keep their message and get their code; anything unexpected is logged and masked,
 * so internals never leak to callers. Stack traces stay out unless `debugErrors` is set.
 */
export function formatError(logger: Logger, options: { debugErrors: boolean }) {
  const visible = options.debugErrors ? (f: GraphQLFormattedError) => f : withoutDebugExtensions;
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const cause = originalError(error);
    if (cause instanceof GatewayError) {
      return visible({ ...formatted, message: cause.message, extensions: { ...formatted.extensions, code: cause.code } });
    }
    const code = formatted.extensions?.code;
    if (code && code !== 'INTERNAL_SERVER_ERROR') return visible(formatted);
    logger.error({ err: cause, path: formatted.path }, 'GraphQL resolver failed');
    const stacktrace = options.debugErrors ? formatted.extensions?.stacktrace : undefined;
    return {
      message: 'internal error; the gateway log has the details',
      path: formatted.path,
      extensions: { code: 'INTERNAL_SERVER_ERROR', ...(stacktrace ? { stacktrace } : {}) },
    };
  };
}

export async function startGraphQL(options: {
  schema: GraphQLSchema;
  httpServer: http.Server;
  auth: RequestAuthenticator;
  rateLimiter: RateLimiter;
  registry: RegistryService;
  config: GraphQLConfig;
  logger: Logger;
}): Promise<{ middleware: RequestHandler; stop: () => Promise<void> }> {
  const { config } = options;
  const apollo = new ApolloServer<GraphQLContext>({
    schema: options.schema,
    formatError: formatError(options.logger, config),
    // Apollo includes stack traces unless NODE_ENV=production; ours follow an explicit switch.
    includeStacktraceInErrorResponses: config.debugErrors,
    introspection: true,
    // The composition root owns shutdown; Apollo's own signal handlers would stop it a second
    // time and re-raise the signal, leaving the process hanging.
    stopOnTerminationSignals: false,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer: options.httpServer }),
      offlineLandingPage(),
      queryLimitsPlugin(config),
      operationBudgetPlugin(config),
    ],
  });
  await apollo.start();
  const middleware = expressMiddleware(apollo, {
    context: async ({ req, res }) => {
      try {
        const principal = await options.auth.principalOf(req);
        options.rateLimiter.check('graphql', principal, req.socket.remoteAddress);
        const caller = callerOf(principal);
        const tooManyTokens = checkRequestTokens(req, caller, config.limits[caller]);
        if (tooManyTokens) throw tooManyTokens;
        return createGraphQLContext(principal, String(res.locals.requestId), options.registry);
      } catch (error) {
        if (error instanceof RetryLaterError) res.setHeader('Retry-After', String(error.retryAfterSeconds));
        if (error instanceof GatewayError) {
          throw new GraphQLError(error.message, { extensions: { code: error.code, http: { status: error.httpStatus } } });
        }
        throw error;
      }
    },
  });
  return { middleware, stop: () => apollo.stop() };
}
