import type { Logger } from 'pino';
import type { PubSub } from 'type-graphql';
import type { ArtifactStore } from '../workers/common/artifacts/artifact-store';
import type { AuditLog } from './audit/audit-log';
import type { TokenService } from './auth/token-service';
import type { GatewayConfig } from './config/config';
import type { DatabaseHandle } from './db/database';
import type { ChangeFeed } from './events/change-feed';
import type { EventBus } from './events/event-bus';
import type { LocalFiles } from './files/local-files';
import type { PluginServices } from './plugins/plugin-services';
import type { RegistryService } from './registry/registry-service';
import type { Serving } from './serving/serving';

/** What the composition root builds once and hands to resolvers, routes and plugins. */
export interface GatewayServices {
  config: GatewayConfig;
  logger: Logger;
  database: DatabaseHandle;
  artifacts: ArtifactStore;
  /** Files admins name by path, confined to LOCAL_PATH_ROOTS. */
  localFiles: LocalFiles;
  audit: AuditLog;
  tokens: TokenService;
  registry: RegistryService;
  events: EventBus;
  /**
   * Tells the other gateway replicas what this one changed in the shared database (topic and
   * key; they re-read), and hears their changes. Nothing to hear on the embedded default.
   */
  changes: ChangeFeed;
  /** GraphQL subscription topics: resolvers publish, `@Subscription` resolvers listen. */
  pubSub: PubSub;
  /** The inference data plane: policies, sessions, metrics (read by resolvers and plugins). */
  serving: Serving;
  /** What plugins offer each other by name (see plugin-services.ts). */
  pluginServices: PluginServices;
}
