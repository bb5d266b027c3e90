import type http from 'node:http';
import type { GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { RequestAuthenticator } from '../http/http-auth';
import type { GraphQLContext } from './graphql-context';

/**
 * GraphQL subscriptions over graphql-ws on the gateway's HTTP server, at the same path as
 * queries. Clients authenticate with `connectionParams: { authorization: 'Bearer <token>' }`
 * (browsers cannot set headers on a WebSocket) or with the upgrade request's header.
 */
export function startSubscriptions(options: {
  schema: GraphQLSchema;
  httpServer: http.Server;
  path: string;
  auth: RequestAuthenticator;
  logger: Logger;
}): { stop: () => Promise<void> } {
  const wsServer = new WebSocketServer({ server: options.httpServer, path: options.path });
  let connections = 0;
  const server = useServer<Record<string, unknown>>(
    {
      schema: options.schema,
      context: async (ctx): Promise<GraphQLContext> => {
        const param = ctx.connectionParams?.authorization;
        const header = typeof param === 'string' ? param : ctx.extra.request.headers.authorization;
        connections++;
        return { principal: await options.auth.principalOfAuthorization(header), requestId: `ws-${connections}` };
      },
      onError: (_ctx, _id, _payload, errors) => {
        options.logger.warn({ errors: errors.map((e) => e.message) }, 'GraphQL subscription failed');
      },
    },
    wsServer,
  );
  return {
    stop: async () => {
      await server.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
