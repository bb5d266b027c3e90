import type { Router } from 'express';
import type { GatewayServices } from '../services';

/**
 * A type-graphql resolver class. The gateway constructs each one once, passing the context of
 * the plugin that contributed it, so resolvers reach services without globals.
 */
export type ResolverClass = new (context: PluginContext) => object;

export interface PluginContext extends GatewayServices {
  /** Mounted at the server root, after the gateway's own routes. */
  routes: Router;
}

/**
 * The door for features: a name, optional GraphQL resolvers, optional lifecycle hooks. Plugins
 * are chosen by configuration (GATEWAY_PLUGINS) and started in order; stopped in reverse order.
 * A plugin module exports one as `default` or as `plugin`.
 */
export interface GatewayPlugin {
  readonly name: string;
  readonly resolvers?: readonly ResolverClass[];
  start?(context: PluginContext): Promise<void> | void;
  stop?(): Promise<void> | void;
}
