import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { Pool, types } from 'pg';
import type { Database } from './schema';

export type DialectName = 'sqlite' | 'postgres';

export interface DatabaseHandle {
  db: Kysely<Database>;
  dialect: DialectName;
  /** Where the data lives, for logs: a file path or the URL without its password. */
  location: string;
  close(): Promise<void>;
}

// BIGINT (int8) arrives as a string by default; our sizes fit well inside 2^53.
types.setTypeParser(20, (value) => Number(value));

/** Reports a pooled connection that the server closed while it sat idle. */
export type ConnectionErrorListener = (error: Error) => void;

export function openPostgres(databaseUrl: string, onConnectionError: ConnectionErrorListener = () => undefined): DatabaseHandle {
  const pool = new Pool({ connectionString: databaseUrl, max: 10 });
  // Without a listener, an idle connection closed by the server (a restart, an administrator)
  // is an unhandled 'error' event that ends the process; the pool replaces it on next use.
  pool.on('error', onConnectionError);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const location = databaseUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  return { db, dialect: 'postgres', location, close: () => db.destroy() };
}

export function openSqlite(file: string): DatabaseHandle {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const sqlite = new SQLite(file);
  // WAL lets readers (GraphQL queries) proceed while a writer commits.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { db, dialect: 'sqlite', location: file, close: () => db.destroy() };
}

/** PostgreSQL when a URL is configured, else the embedded SQLite file under the data directory. */
export function openDatabase(
  options: { databaseUrl?: string; dataDir: string },
  onConnectionError?: ConnectionErrorListener,
): DatabaseHandle {
  return options.databaseUrl
    ? openPostgres(options.databaseUrl, onConnectionError)
    : openSqlite(path.join(options.dataDir, 'gateway.sqlite'));
}
