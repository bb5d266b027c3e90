import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/**
 * Suites that need PostgreSQL or NATS use these. `global-setup.ts` probes the servers once per
 * run: with REQUIRE_SERVICES=1 (CI) a missing service fails the run; on a laptop without the
 * services the suites that need them are skipped with a note.
 */
export const POSTGRES_ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const NATS_TEST_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

function describeWhen(available: boolean, service: string, name: string, body: () => void): void {
  if (available) {
    describe(name, body);
  } else {
    console.warn(`skipping "${name}": ${service} is not reachable (set REQUIRE_SERVICES=1 to fail instead)`);
    describe.skip(name, body);
  }
}

export function describeWithPostgres(name: string, body: () => void): void {
  describeWhen(process.env.TEST_POSTGRES_AVAILABLE === '1', `PostgreSQL at ${POSTGRES_ADMIN_URL}`, name, body);
}

export function describeWithNats(name: string, body: () => void): void {
  describeWhen(process.env.TEST_NATS_AVAILABLE === '1', `NATS at ${NATS_TEST_URL}`, name, body);
}

/** A fresh, empty database on the test server; `drop()` removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `gw_test_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new Client({ connectionString: POSTGRES_ADMIN_URL });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
