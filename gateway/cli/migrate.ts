// Plugin modules declare GraphQL types with decorators, which need the metadata polyfill loaded first.
import 'reflect-metadata';
import { ConfigError, loadConfig } from '../config/config';
import { openDatabase } from '../db/database';
import { migrateDown, migrateToLatest } from '../db/migrate';
import { loadPlugins } from '../plugins/plugin-loader';

/**
 * `npm run migrate [-- --down]`: applies pending migrations, the core's and those of the
 * configured plugins (GATEWAY_PLUGINS), or reverts the latest one.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const plugins = loadPlugins(config.plugins);
  const database = openDatabase(config);
  try {
    const down = process.argv.includes('--down');
    const names = down ? await migrateDown(database, plugins) : await migrateToLatest(database, plugins);
    const verb = down ? 'reverted' : 'applied';
    process.stdout.write(names.length ? `${verb}: ${names.join(', ')}\n` : `nothing to ${down ? 'revert' : 'apply'} (${database.location})\n`);
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  const prefix = error instanceof ConfigError ? 'configuration error' : 'migration failed';
  process.stderr.write(`${prefix}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
