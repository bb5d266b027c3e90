import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Migrator, type Kysely, type Migration } from 'kysely';
import { openPostgres, openSqlite, type DatabaseHandle } from '../../gateway/db/database';
import { applyMigrations, CORE_MIGRATIONS, MigrationError, migrateDown, migrateToLatest, type MigrationOwner } from '../../gateway/db/migrate';
import { migrations as coreMigrations } from '../../migrations';
import type { MigrationFactory } from '../../migrations/migration';
import fimaq from '../../plugins/fimaq';
import { createTestDatabase, describeWithPostgres } from '../support/services';

const CORE = Object.keys(coreMigrations);

async function tableNames(handle: DatabaseHandle): Promise<string[]> {
  const tables = await handle.db.introspection.getTables();
  return tables.map((t) => t.name).filter((n) => !n.startsWith('kysely_')).sort();
}

/** A core migration added after the plugin's, named after it (as 0004_traffic_policy_version is). */
const laterCoreMigration: MigrationFactory = () => ({
  async up(db: Kysely<unknown>) {
    await db.schema.createTable('later_things').addColumn('id', 'text', (c) => c.primaryKey()).execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable('later_things').execute();
  },
});
const CORE_WITH_LATER: MigrationOwner = { name: 'core', migrations: { ...coreMigrations, '0004_later': laterCoreMigration } };

/** The plugin's migrations, in the order they apply. */
const PLUGIN = ['0003_jobs', '0021_job_iterations'];

/** A database as the gateway made it before plugins brought migrations: 0001..0003_jobs under one migrator. */
async function migrateAsBefore(handle: DatabaseHandle): Promise<void> {
  const all: Record<string, Migration> = {};
  for (const [name, factory] of Object.entries({ ...coreMigrations, ...fimaq.migrations })) all[name] = factory(handle.dialect);
  const { error } = await new Migrator({ db: handle.db, provider: { getMigrations: async () => all } }).migrateToLatest();
  if (error) throw error;
}

function pluginMigrationSuite(open: () => Promise<{ handle: DatabaseHandle; dispose: () => Promise<void> }>) {
  let handle: DatabaseHandle;
  let dispose: () => Promise<void>;
  beforeEach(async () => {
    ({ handle, dispose } = await open());
  });
  afterEach(async () => {
    await handle?.close();
    await dispose?.();
  });

  test('the core migrates first, then the plugin, under the plugin migration\'s old name', async () => {
    expect(await migrateToLatest(handle, [fimaq])).toEqual([...CORE, ...PLUGIN]);
    expect(await tableNames(handle)).toEqual(expect.arrayContaining(['models', 'quantization_jobs', 'job_outbox']));
    expect(await migrateToLatest(handle, [fimaq])).toEqual([]);
  });

  test('a database migrated before plugins brought their migrations has nothing new to apply', async () => {
    await migrateAsBefore(handle);
    expect(await migrateToLatest(handle, [fimaq])).toEqual([]);
    // Without the plugin configured the gateway still starts on it; the plugin's tables stay.
    expect(await migrateToLatest(handle)).toEqual([]);
    expect(await tableNames(handle)).toEqual(expect.arrayContaining(['quantization_jobs', 'job_outbox']));
  });

  test('a core migration named after the plugin\'s applies on a database that has the plugin\'s', async () => {
    await migrateAsBefore(handle);
    expect(await applyMigrations(handle, [CORE_WITH_LATER, fimaq])).toEqual(['0004_later']);
    expect(await applyMigrations(handle, [CORE_WITH_LATER, fimaq])).toEqual([]);
  });

  test('a plugin configured after a later core migration applied still gets its migration', async () => {
    expect(await applyMigrations(handle, [CORE_WITH_LATER])).toEqual([...CORE, '0004_later'].sort());
    expect(await applyMigrations(handle, [CORE_WITH_LATER, fimaq])).toEqual(PLUGIN);
    expect(await applyMigrations(handle, [CORE_WITH_LATER, fimaq])).toEqual([]);
    expect(await tableNames(handle)).toEqual(expect.arrayContaining(['later_things', 'quantization_jobs']));
  });

  test('the plugin\'s migration reverts with the plugin configured, and is refused without it', async () => {
    await migrateToLatest(handle, [fimaq]);
    await expect(migrateDown(handle)).rejects.toThrow(/0021_job_iterations belongs to a plugin that is not configured/);
    expect(await tableNames(handle)).toEqual(expect.arrayContaining(['quantization_jobs']));
    for (const name of [...PLUGIN].reverse()) expect(await migrateDown(handle, [fimaq])).toEqual([name]);
    expect(await tableNames(handle)).not.toContain('quantization_jobs');
    for (const name of [...CORE].reverse()) expect(await migrateDown(handle, [fimaq])).toEqual([name]);
    expect(await tableNames(handle)).toEqual([]);
  });

  test('a plugin bringing a migration name the core uses is refused before anything is applied', async () => {
    const clashing: MigrationOwner = { name: 'clash', migrations: { [CORE[0]]: laterCoreMigration } };
    await expect(migrateToLatest(handle, [clashing])).rejects.toThrow(MigrationError);
    await expect(migrateToLatest(handle, [clashing])).rejects.toThrow(`migration ${CORE[0]} is brought by both ${CORE_MIGRATIONS.name} and clash`);
    expect(await tableNames(handle)).toEqual([]);
  });
}

describe('plugin migrations on SQLite', () =>
  pluginMigrationSuite(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-plugin-migrate-'));
    return { handle: openSqlite(path.join(dir, 'db.sqlite')), dispose: async () => fs.rmSync(dir, { recursive: true, force: true }) };
  }));

describeWithPostgres('plugin migrations on PostgreSQL', () =>
  pluginMigrationSuite(async () => {
    const database = await createTestDatabase();
    return { handle: openPostgres(database.url), dispose: database.drop };
  }));
