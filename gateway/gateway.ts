import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { Router } from 'express';
import { printSchema } from 'graphql';
import type { Logger } from 'pino';
import { FileArtifactStore } from '../workers/common/artifacts/file-artifact-store';
import { AuditLog } from './audit/audit-log';
import { RateLimiter } from './auth/rate-limits';
import { TokenService } from './auth/token-service';
import { PROJECT_ROOT, type GatewayConfig } from './config/config';
import { openDatabase } from './db/database';
import { migrateToLatest } from './db/migrate';
import { openChangeFeed } from './events/change-feed';
import { EventBus } from './events/event-bus';
import { LocalFiles } from './files/local-files';
import { buildGatewaySchema, CORE_RESOLVERS, ResolverContainer } from './graphql/build-schema';
import { startGraphQL } from './graphql/graphql-server';
import { SDL_PATH } from './graphql/landing-page';
import { InProcessPubSub } from './graphql/pubsub';
import { startSubscriptions } from './graphql/subscription-server';
import { serverTiming } from './http/server-timing';
import { artifactRoutes } from './http/artifact-routes';
import { answerClientError } from './http/client-errors';
import { errorHandler, notFoundHandler } from './http/errors-middleware';
import { healthRoutes } from './http/health-routes';
import { metricsRoute } from './http/metrics-route';
import { dashboardRoutes } from './http/dashboard-routes';
import { inferEndpoint } from './http/inference/infer-endpoint';
import { inferenceRoutes } from './http/inference/inference-routes';
import { RequestAuthenticator } from './http/http-auth';
import { requestId } from './http/request-id';
import { requestLog } from './http/request-log';
import { variantRoutes } from './http/variant-routes';
import type { GatewayPlugin, PluginContext } from './plugins/plugin-api';
import { checkPluginOrder, loadPlugins } from './plugins/plugin-loader';
import { PluginServices } from './plugins/plugin-services';
import { RegistryRepository } from './registry/registry-repository';
import { RegistryService } from './registry/registry-service';
import { startServing } from './serving/serving';
import type { GatewayServices } from './services';

export interface RunningGateway {
  url: string;
  services: GatewayServices;
  /** The admin token created on this start, when the database had no token yet. */
  initialAdminToken: string | undefined;
  stop(): Promise<void>;
}

export interface GatewayOptions {
  config: GatewayConfig;
  logger: Logger;
  /** Plugins given directly (tests); otherwise those named by the configuration are loaded. */
  plugins?: GatewayPlugin[];
}

/**
 * Builds and starts one gateway process: database (migrated), artifact store, registry, auth,
 * plugins, GraphQL and HTTP. The only place where parts are wired together.
 */
export async function startGateway({ config, logger, plugins: givenPlugins }: GatewayOptions): Promise<RunningGateway> {
  const database = openDatabase(config, (error) => logger.warn({ err: error }, 'database connection lost; the pool reconnects'));
  const cleanups: Array<() => Promise<void> | void> = [() => database.close()];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (error) {
        logger.warn({ err: error }, 'shutdown step failed');
      }
    }
  };

  try {
    const plugins = givenPlugins ?? loadPlugins(config.plugins);
    checkPluginOrder(plugins);
    const applied = await migrateToLatest(database, plugins);
    logger.info({ database: database.location, dialect: database.dialect, applied }, 'database ready');

    const events = new EventBus((event, error) => logger.error({ err: error, event }, 'event listener failed'));
    const artifacts = new FileArtifactStore(path.join(config.dataDir, 'artifacts'));
    const audit = new AuditLog(database.db);
    const tokens = new TokenService(database.db, audit);
    const repository = new RegistryRepository(database.db);
    const localFiles = new LocalFiles(config.localPathRoots, config.maxUploadBytes);
    const registry = new RegistryService(repository, artifacts, audit, events, logger, localFiles, config.onnxLimits);
    const pubSub = new InProcessPubSub();
    const changes = await openChangeFeed(config.databaseUrl, logger);
    cleanups.push(() => changes.close());
    const serving = startServing({ settings: config.serving, logger, db: database.db, artifacts, audit, registry, events, changes });
    cleanups.push(serving.stop);
    const services: GatewayServices = { config, logger, database, artifacts, localFiles, audit, tokens, registry, events, changes, serving, pubSub, pluginServices: new PluginServices() };

    const initialAdminToken = await tokens.bootstrapAdmin(config.adminToken);
    if (!config.authEnabled) logger.warn('authentication is DISABLED (GATEWAY_AUTH_DISABLED): every caller is admin');

    const auth = new RequestAuthenticator(tokens, config.authEnabled);
    const rateLimiter = new RateLimiter(config.rateLimits);
    let started = false;
    const app = express();
    app.disable('x-powered-by');
    // Answers are computed per request; hashing every body for an ETag only costs time.
    app.set('etag', false);
    app.use(requestId);
    app.use(requestLog(logger));
    app.use(healthRoutes(database, () => started));
    app.use(artifactRoutes({ artifacts, repository, auth, maxBytes: config.maxUploadBytes }));
    app.use(variantRoutes({ registry, auth }));
    app.use(metricsRoute(serving.metrics.registry));
    app.use(dashboardRoutes(path.join(PROJECT_ROOT, 'dist', 'dashboard')));
    app.use(inferenceRoutes({ dataPlane: serving.dataPlane, auth, rateLimiter, maxBodyBytes: config.maxRequestBytes }));
    const inferRequest = inferEndpoint({ dataPlane: serving.dataPlane, auth, rateLimiter, maxBodyBytes: config.maxRequestBytes, logger });
    const httpServer = http.createServer((req, res) => {
      if (!inferRequest(req, res)) app(req, res);
    });
    httpServer.on('clientError', answerClientError);

    const container = new ResolverContainer();
    const contextFor = (): PluginContext => ({ ...services, routes: Router(), onStop: (step) => cleanups.push(step) });
    container.add(CORE_RESOLVERS, contextFor());
    for (const plugin of plugins) {
      const context = contextFor();
      const running = await plugin.start(context);
      if (running.stop) cleanups.push(running.stop);
      container.add(plugin.resolvers ?? [], running.resolverContext);
      app.use(context.routes);
      logger.info({ plugin: plugin.name }, 'plugin started');
    }

    const schema = await buildGatewaySchema(plugins, container, pubSub);
    const subscriptions = startSubscriptions({ schema, httpServer, path: '/graphql', auth, registry, limits: config.graphql.limits, logger });
    cleanups.push(subscriptions.stop);
    const graphql = await startGraphQL({ schema, httpServer, auth, rateLimiter, registry, config: config.graphql, logger });
    cleanups.push(graphql.stop);
    const sdl = `${printSchema(schema)}\n`;
    app.get(SDL_PATH, (_req, res) => void res.type('text/plain; charset=utf-8').send(sdl));
    app.use('/graphql', serverTiming('graphql'), express.json({ limit: config.maxRequestBytes }), graphql.middleware);
    app.use(notFoundHandler);
    app.use(errorHandler(logger));

    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(config.port, config.host, () => resolve());
    });
    cleanups.push(() => new Promise<void>((resolve) => httpServer.close(() => resolve())));
    started = true;
    const { port } = httpServer.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    const url = `http://${host}:${port}`;
    logger.info({ url, plugins: plugins.map((p) => p.name) }, 'gateway listening');

    let stopped = false;
    return {
      url,
      services,
      initialAdminToken,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        started = false;
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
