import { ConfigError, loadConfig } from '../config/config';
import { openDatabase } from '../db/database';
import { migrateDown, migrateToLatest } from '../db/migrate';

/** `npm run migrate [-- --down]`: applies pending migrations (or reverts the latest one). */
async function main(): Promise<void> {
  const config = loadConfig();
  const database = openDatabase(config);
  try {
    const down = process.argv.includes('--down');
    const names = down ? await migrateDown(database) : await migrateToLatest(database);
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
