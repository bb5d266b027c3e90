import { DEFAULT_MIGRATION_TABLE, Migrator, sql, type Migration, type MigrationResult } from 'kysely';
import { migrations as coreMigrations } from '../../migrations';
import type { MigrationFactory } from '../../migrations/migration';
import type { DatabaseHandle } from './database';

export class MigrationError extends Error {}

/** Whoever brings migrations: the core, or a plugin (a GatewayPlugin fits). */
export interface MigrationOwner {
  readonly name: string;
  readonly migrations?: Readonly<Record<string, MigrationFactory>>;
}

export const CORE_MIGRATIONS: MigrationOwner = { name: 'core', migrations: coreMigrations };

/**
 * A migration the database records but no configured owner brings (its plugin is not configured
 * now). It stays applied; only reverting it needs its plugin back.
 */
function notConfigured(name: string): Migration {
  const refuse = async () => {
    throw new MigrationError(`migration ${name} belongs to a plugin that is not configured; configure the plugin to revert it`);
  };
  return { up: refuse, down: refuse };
}

/** Every owner's migrations for the dialect, by name; a name brought twice is refused. */
function migrationsOf(owners: readonly MigrationOwner[], dialect: DatabaseHandle['dialect']): Record<string, Migration> {
  const byName: Record<string, Migration> = {};
  const ownerOf = new Map<string, string>();
  for (const owner of owners) {
    for (const [name, factory] of Object.entries(owner.migrations ?? {})) {
      const other = ownerOf.get(name);
      if (other !== undefined) throw new MigrationError(`migration ${name} is brought by both ${other} and ${owner.name}; migration names must be unique`);
      ownerOf.set(name, owner.name);
      byName[name] = factory(dialect);
    }
  }
  return byName;
}

async function executedNames(handle: DatabaseHandle): Promise<string[]> {
  const tables = await handle.db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((t) => t.name === DEFAULT_MIGRATION_TABLE)) return [];
  const { rows } = await sql<{ name: string }>`select name from ${sql.table(DEFAULT_MIGRATION_TABLE)}`.execute(handle.db);
  return rows.map((r) => r.name);
}

/**
 * A migrator over the given owners' migrations plus a stand-in for each recorded one they do not
 * bring. Unordered, because owners apply in turn: a core migration named after a plugin's (say
 * 0004 after 0003_jobs) may be applied before or after it, depending on which arrived first.
 */
async function migrator(handle: DatabaseHandle, owners: readonly MigrationOwner[]): Promise<Migrator> {
  const known = migrationsOf(owners, handle.dialect);
  for (const name of await executedNames(handle)) known[name] ??= notConfigured(name);
  return new Migrator({ db: handle.db, provider: { getMigrations: async () => known }, allowUnorderedMigrations: true });
}

/**
 * Applies every pending migration of the owners, in turn: all of the first owner's, then the
 * next's. Returns the names applied now.
 */
export async function applyMigrations(handle: DatabaseHandle, owners: readonly MigrationOwner[]): Promise<string[]> {
  // Refuses a name clash before anything is applied.
  migrationsOf(owners, handle.dialect);
  const applied: string[] = [];
  for (let i = 0; i < owners.length; i++) {
    const { error, results } = await (await migrator(handle, owners.slice(0, i + 1))).migrateToLatest();
    applied.push(...finish(error, results));
  }
  return applied;
}

/**
 * Applies every pending migration, the core's first and then each plugin's in plugin order, so a
 * plugin's tables may refer to any core table. Returns the names applied now.
 */
export function migrateToLatest(handle: DatabaseHandle, plugins: readonly MigrationOwner[] = []): Promise<string[]> {
  return applyMigrations(handle, [CORE_MIGRATIONS, ...plugins]);
}

/** Reverts the latest applied migration, core or plugin; returns its name (empty when none was applied). */
export async function migrateDown(handle: DatabaseHandle, plugins: readonly MigrationOwner[] = []): Promise<string[]> {
  const { error, results } = await (await migrator(handle, [CORE_MIGRATIONS, ...plugins])).migrateDown();
  return finish(error, results);
}

function finish(error: unknown, results: MigrationResult[] | undefined): string[] {
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    const reason = error instanceof Error ? error.message : String(error);
    throw new MigrationError(`migration ${failed} failed: ${reason}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
