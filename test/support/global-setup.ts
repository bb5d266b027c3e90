import net from 'node:net';
import { Client } from 'pg';
import { NATS_TEST_URL, POSTGRES_ADMIN_URL } from './services';

async function postgresReachable(): Promise<boolean> {
  const client = new Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function natsReachable(): Promise<boolean> {
  const url = new URL(NATS_TEST_URL);
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || 4222), timeout: 2000 });
    socket.once('data', (chunk) => {
      socket.destroy();
      resolve(chunk.toString().startsWith('INFO'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Probes the real services once; test files read the result from the environment. */
export default async function globalSetup(): Promise<void> {
  const [postgres, nats] = await Promise.all([postgresReachable(), natsReachable()]);
  process.env.TEST_POSTGRES_AVAILABLE = postgres ? '1' : '0';
  process.env.TEST_NATS_AVAILABLE = nats ? '1' : '0';
  if (process.env.REQUIRE_SERVICES === '1') {
    const missing = [!postgres && `PostgreSQL (${POSTGRES_ADMIN_URL})`, !nats && `NATS (${NATS_TEST_URL})`].filter(Boolean);
    if (missing.length) throw new Error(`REQUIRE_SERVICES=1 but not reachable: ${missing.join(', ')}`);
  }
}
