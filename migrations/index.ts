import type { MigrationFactory } from './migration';
import { registryMigration } from './0001_registry';
import { servingMigration } from './0002_serving';
import { pairedOutcomesMigration } from './0004_paired_outcomes';
import { computeHistogramsMigration } from './0005_compute_histograms';
import { galleriesMigration } from './0006_galleries';
import { retrievalFiguresMigration } from './0007_retrieval_figures';

/**
 * The core's migrations in order; plugins bring their own (`0003_jobs` is the fimaq plugin's).
 * Names are permanent and shared with the plugins': kysely records them all in one table, so
 * rename nothing here; append new entries with the next free number.
 */
export const migrations: Record<string, MigrationFactory> = {
  '0001_registry': registryMigration,
  '0002_serving': servingMigration,
  '0004_paired_outcomes': pairedOutcomesMigration,
  '0005_compute_histograms': computeHistogramsMigration,
  '0006_galleries': galleriesMigration,
  '0007_retrieval_figures': retrievalFiguresMigration,
};
