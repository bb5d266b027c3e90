import type { Migration } from 'kysely';

/** A migration that may differ per dialect (identity columns, timestamp types). */
export type MigrationFactory = (dialect: 'sqlite' | 'postgres') => Migration;
