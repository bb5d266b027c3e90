import path from 'node:path';
import type { GatewayPlugin } from './plugin-api';

/** The folder above `gateway/`: the source tree under test, `dist/` when built. */
const CODE_ROOT = path.resolve(__dirname, '..', '..');

export class PluginLoadError extends Error {}

function isPlugin(value: unknown): value is GatewayPlugin {
  return typeof value === 'object' && value !== null && typeof (value as GatewayPlugin).name === 'string' && typeof (value as GatewayPlugin).start === 'function';
}

/**
 * Loads plugins by module specifier: relative ones (`./plugins/fimaq`) from the code root,
 * others as packages or absolute paths. The gateway imports no plugin by name.
 */
export function loadPlugins(specifiers: readonly string[]): GatewayPlugin[] {
  const plugins = specifiers.map((specifier) => {
    const resolved = specifier.startsWith('.') ? path.resolve(CODE_ROOT, specifier) : specifier;
    let loaded: Record<string, unknown>;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      loaded = require(resolved) as Record<string, unknown>;
    } catch (error) {
      throw new PluginLoadError(`cannot load plugin "${specifier}": ${(error as Error).message.split('\n')[0]}`);
    }
    const plugin = loaded.default ?? loaded.plugin;
    if (!isPlugin(plugin)) throw new PluginLoadError(`plugin "${specifier}" exports no plugin (a default or "plugin" export with a name and a start function)`);
    return plugin;
  });
  checkPluginOrder(plugins);
  return plugins;
}

/** Refuses a plugin configured twice, and one configured before (or without) a plugin it depends on. */
export function checkPluginOrder(plugins: readonly GatewayPlugin[]): void {
  const names = plugins.map((p) => p.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) throw new PluginLoadError(`plugin "${duplicate}" is configured twice`);
  plugins.forEach((plugin, index) => {
    for (const dependency of plugin.dependsOn ?? []) {
      if (!names.slice(0, index).includes(dependency)) {
        throw new PluginLoadError(`plugin "${plugin.name}" depends on "${dependency}", which must be configured before it`);
      }
    }
  });
}
