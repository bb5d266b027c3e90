import { Migrator, type Migration, type MigrationResult } from 'kysely';
import { migrations } from '../../migrations';
import type { DatabaseHandle } from './database';

export class MigrationError extends Error {}

function migrator(handle: DatabaseHandle): Migrator {
  const forDialect: Record<string, Migration> = {};
  for (const [name, factory] of Object.entries(migrations)) forDialect[name] = factory(handle.dialect);
  return new Migrator({
    db: handle.db,
    provider: { getMigrations: async () => forDialect },
  });
}

/** Applies every pending migration; returns the names applied now. */
export async function migrateToLatest(handle: DatabaseHandle): Promise<string[]> {
  const { error, results } = await migrator(handle).migrateToLatest();
  return finish(error, results);
}

/** Reverts the latest applied migration; returns its name (empty when none was applied). */
export async function migrateDown(handle: DatabaseHandle): Promise<string[]> {
  const { error, results } = await migrator(handle).migrateDown();
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
