import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../gateway/config/config';
import { startGateway, type RunningGateway } from '../../gateway/gateway';
import type { GatewayPlugin } from '../../gateway/plugins/plugin-api';
import { createTestDatabase } from './services';

export type Dialect = 'sqlite' | 'postgres';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Tests register fixtures and write datasets to temporary directories; the demo assets stay readable. */
const TEST_LOCAL_PATH_ROOTS = [path.join(REPO_ROOT, 'test', 'fixtures'), os.tmpdir(), path.join(REPO_ROOT, 'deploy', 'demo'), '/usr/share/datasets'].join(path.delimiter);

/** Where a test gateway keeps its state; a second gateway started on it sees the first one's. */
export interface TestStorage {
  dataDir: string;
  database?: { url: string; drop: () => Promise<void> };
}

export interface TestGateway extends RunningGateway {
  dataDir: string;
  storage: TestStorage;
  /** Stops the gateway and keeps its storage, for a restart with `startTestGateway({ storage })`. */
  halt(): Promise<void>;
  /** POSTs a GraphQL operation; returns the parsed body and the HTTP status. */
  graphql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<{ status: number; data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> }>;
}

/**
 * A real gateway on an ephemeral port with its own data directory and, for PostgreSQL, its own
 * database, so suites never see each other's rows.
 */
export async function startTestGateway(
  options: { dialect?: Dialect; plugins?: GatewayPlugin[]; env?: Record<string, string>; storage?: TestStorage } = {},
): Promise<TestGateway> {
  const dataDir = options.storage?.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gw-test-'));
  const database = options.storage ? options.storage.database : options.dialect === 'postgres' ? await createTestDatabase() : undefined;
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    GATEWAY_PLUGINS: '',
    LOG_LEVEL: 'silent',
    LOCAL_PATH_ROOTS: TEST_LOCAL_PATH_ROOTS,
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...options.env,
  });
  const gateway = await startGateway({ config, logger: pino({ level: 'silent' }), plugins: options.plugins });
  return {
    ...gateway,
    dataDir,
    storage: { dataDir, database },
    halt: () => gateway.stop(),
    stop: async () => {
      await gateway.stop();
      await database?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
    graphql: async (query, variables = {}, token = ADMIN_TOKEN) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await fetch(`${gateway.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const body = (await response.json()) as { data?: never; errors?: never };
      return { status: response.status, ...body };
    },
  };
}

export const FIXTURES = path.resolve(__dirname, '..', 'fixtures', 'gateway');

/** Uploads a file to the artifact endpoint and returns its sha256. */
export async function uploadArtifact(gateway: RunningGateway, body: Buffer, token: string | null = ADMIN_TOKEN): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(`${gateway.url}/v1/artifacts`, { method: 'POST', headers, body: new Uint8Array(body) });
}
