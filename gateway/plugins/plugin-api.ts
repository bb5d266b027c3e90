import type { Router } from 'express';
import type { MigrationFactory } from '../../migrations/migration';
import type { GatewayServices } from '../services';

/**
 * A type-graphql resolver class. The gateway constructs each one once: the core's with the
 * gateway's services, a plugin's with the `resolverContext` its `start` returned, so resolvers
 * reach what they need without globals.
 */
export type ResolverClass = new (context: never) => object;

/** Teardown of one resource; steps run in reverse order of registration. */
export type StopStep = () => Promise<void> | void;

export interface PluginContext extends GatewayServices {
  /** Mounted at the server root, after the gateway's own routes. */
  routes: Router;
  /**
   * Registers the teardown of a resource the plugin just opened. Register right after opening
   * it: when a later step of `start` throws, the gateway runs what was registered so far (in
   * reverse order), so a failed start leaks nothing. Otherwise the steps run when the gateway stops.
   */
  onStop(step: StopStep): void;
}

/** What `start` hands back: the object the plugin's resolvers are constructed with, and its stop. */
export interface RunningPlugin {
  readonly resolverContext?: unknown;
  /** Runs before the steps given to `onStop`, when the gateway stops. */
  stop?: StopStep;
}

/**
 * The door for features: a name, optional GraphQL resolvers, migrations and dependencies, and
 * `start`. Plugins are chosen by configuration (GATEWAY_PLUGINS) and started in order; what they
 * opened is closed in reverse order. A plugin module exports one as `default` or as `plugin`.
 */
export interface GatewayPlugin {
  readonly name: string;
  /** Names of plugins that must be configured before this one. */
  readonly dependsOn?: readonly string[];
  /**
   * The plugin's own tables, applied after the core's migrations. Names are permanent and share
   * one namespace with the core's (kysely records them in one table).
   */
  readonly migrations?: Readonly<Record<string, MigrationFactory>>;
  readonly resolvers?: readonly ResolverClass[];
  start(context: PluginContext): Promise<RunningPlugin> | RunningPlugin;
}
