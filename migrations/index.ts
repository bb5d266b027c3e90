import type { MigrationFactory } from './migration';
import { registryMigration } from './0001_registry';
import { servingMigration } from './0002_serving';
import { jobsMigration } from './0003_jobs';
import { galleriesMigration } from './0006_galleries';

/**
 * Every migration in order. Names are permanent: kysely records them in its migration table,
 * so rename nothing here; append new entries with the next number.
 */
export const migrations: Record<string, MigrationFactory> = {
  '0001_registry': registryMigration,
  '0002_serving': servingMigration,
  '0003_jobs': jobsMigration,
  '0006_galleries': galleriesMigration,
};
