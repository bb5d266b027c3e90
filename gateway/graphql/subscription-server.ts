import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, parse, type GraphQLSchema } from 'graphql';
import type { Context } from 'graphql-ws';
import { useServer, type Extra } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { GraphQLConfig } from '../config/config';
import { endWithError } from '../http/client-errors';
import type { RequestAuthenticator } from '../http/http-auth';
import type { RegistryService } from '../registry/registry-service';
import { createGraphQLContext, type GraphQLContext } from './graphql-context';
import { callerOf, checkShape, checkTokens } from './limits/query-limits';

const TOKEN_LIST = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:\s*,\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/;

/**
 * Why an upgrade request cannot become a WebSocket here, checked before the ws library sees it:
 * its own refusals are bare text/html, and every HTTP error of the gateway is `{"error": ...}`.
 */
function upgradeRefusal(req: http.IncomingMessage, path: string): [number, string] | undefined {
  if ((req.url ?? '').split('?')[0] !== path) return [404, `no WebSocket endpoint at ${req.url}; GraphQL subscriptions are at ${path}`];
  if (req.method !== 'GET') return [405, 'a WebSocket upgrade must be a GET request'];
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return [400, 'the Upgrade header must be "websocket"'];
  if (!/^[+/0-9A-Za-z]{22}==$/.test(req.headers['sec-websocket-key'] ?? '')) return [400, 'missing or invalid Sec-WebSocket-Key header'];
  if (!['8', '13'].includes(req.headers['sec-websocket-version'] ?? '')) return [400, 'Sec-WebSocket-Version must be 13 (or 8)'];
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined && !TOKEN_LIST.test(protocols.trim())) return [400, 'invalid Sec-WebSocket-Protocol header'];
  return undefined;
}

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
  registry: RegistryService;
  limits: GraphQLConfig['limits'];
  logger: Logger;
}): { stop: () => Promise<void> } {
  const wsServer = new WebSocketServer({ noServer: true });
  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const refusal = upgradeRefusal(req, options.path);
    if (refusal) endWithError(socket, ...refusal);
    else wsServer.handleUpgrade(req, socket, head, (ws) => wsServer.emit('connection', ws, req));
  };
  options.httpServer.on('upgrade', onUpgrade);
  let connections = 0;
  const principalOf = (ctx: Context<Record<string, unknown>, Extra>) => {
    const param = ctx.connectionParams?.authorization;
    return options.auth.principalOfAuthorization(typeof param === 'string' ? param : ctx.extra.request.headers.authorization);
  };
  const server = useServer<Record<string, unknown>>(
    {
      schema: options.schema,
      context: async (ctx): Promise<GraphQLContext> => {
        connections++;
        return createGraphQLContext(await principalOf(ctx), `ws-${connections}`, options.registry, { subscription: true });
      },
      // The same per-caller limits as over HTTP, before graphql-ws parses and validates on its own.
      onSubscribe: async (ctx, _id, payload) => {
        const caller = callerOf(await principalOf(ctx));
        const limits = options.limits[caller];
        const tooManyTokens = checkTokens(payload.query, caller, limits);
        if (tooManyTokens) return [tooManyTokens];
        try {
          const tooComplex = checkShape(options.schema, parse(payload.query), caller, limits);
          if (tooComplex) return [tooComplex];
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        return undefined;
      },
      onError: (_ctx, _id, _payload, errors) => {
        options.logger.warn({ errors: errors.map((e) => e.message) }, 'GraphQL subscription failed');
      },
    },
    wsServer,
  );
  return {
    stop: async () => {
      options.httpServer.off('upgrade', onUpgrade);
      await server.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
