import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, describeWithNats, describeWithPostgres, NATS_TEST_URL } from '../support/services';
import { deleteNamespace, uniqueNamespace } from '../jobs/support/jobs-harness';
import { FIXTURES } from '../support/gateway-harness';

const ROOT = path.resolve(__dirname, '..', '..');
const REGISTER_TS = path.join(ROOT, 'test', 'support', 'register-ts.js');

/**
 * A real gateway process at the most verbose level, over PostgreSQL (with a password in its URL)
 * and NATS, taken through what handles secrets: tokens created, used, refused, revoked; then its
 * whole output is searched for every secret it saw.
 */
describeWithPostgres('secrets in the logs', () => {
  describeWithNats('of a real run at trace level', () => {
    test('no token (valid, created, wrong or revoked) nor the database password appears in the output', async () => {
      const database = await createTestDatabase();
      const namespace = uniqueNamespace();
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-secrets-'));
      const adminToken = `admin-${randomBytes(16).toString('hex')}`;
      const dbPassword = `dbpw-${randomBytes(12).toString('hex')}`;
      // The test server trusts local connections, so the password is sent and ignored: still a secret to keep out of logs.
      const databaseUrl = new URL(database.url);
      databaseUrl.password = dbPassword;
      const child = spawn(process.execPath, ['-r', REGISTER_TS, path.join(ROOT, 'gateway', 'main.ts')], {
        cwd: ROOT,
        env: {
          ...process.env,
          NODE_ENV: 'production',
          DATA_DIR: dataDir,
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'trace',
          GATEWAY_ADMIN_TOKEN: adminToken,
          DATABASE_URL: databaseUrl.toString(),
          NATS_URL: NATS_TEST_URL,
          FIMAQ_NATS_NAMESPACE: namespace,
          LOCAL_PATH_ROOTS: FIXTURES,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      try {
        const url = await new Promise<string>((resolve, reject) => {
          const read = (chunk: Buffer) => {
            output += chunk.toString();
            const match = /gateway ready at (http:\/\/\S+) /.exec(output);
            if (match) resolve(match[1]);
          };
          child.stdout.on('data', read);
          child.stderr.on('data', read);
          child.once('exit', (code) => reject(new Error(`gateway exited with ${code}:\n${output}`)));
        });
        const graphql = async (query: string, token: string, variables: Record<string, unknown> = {}) => {
          const response = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
          return (await response.json()) as { data?: Record<string, never>; errors?: unknown[] };
        };
        const created = await graphql(`mutation { createApiToken(name: "serving", role: inference) { token info { id } } }`, adminToken);
        const { token: inferenceToken, info } = (created.data as unknown as { createApiToken: { token: string; info: { id: string } } }).createApiToken;
        const registered = await graphql(
          `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`,
          adminToken,
          { input: { name: 'shop', task: 'CLASSIFICATION', labels: Array.from({ length: 10 }, (_, i) => `c${i}`), preprocessing: { height: 28, width: 28, channels: 1 }, localPath: path.join(FIXTURES, 'tiny-classifier.onnx') } },
        );
        expect(registered.errors).toBeUndefined();
        const infer = await fetch(`${url}/v2/models/shop/infer`, {
          method: 'POST',
          headers: { authorization: `Bearer ${inferenceToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(0.5) }] }),
        });
        expect(infer.status).toBe(200);
        const wrongToken = `vgw_${randomBytes(32).toString('base64url')}`;
        expect((await fetch(`${url}/v2/models/shop`, { headers: { authorization: `Bearer ${wrongToken}` } })).status).toBe(401);
        expect((await graphql(`{ models { name } }`, inferenceToken)).errors).toBeDefined();
        expect((await graphql(`{ models { name } }`, wrongToken)).errors).toBeDefined();
        await graphql(`mutation($id: ID!) { revokeApiToken(id: $id) { id } }`, adminToken, { id: info.id });
        expect((await fetch(`${url}/v2/models/shop`, { headers: { authorization: `Bearer ${inferenceToken}` } })).status).toBe(401);

        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        // The run logged requests with their headers (so an empty output cannot pass), credentials censored.
        expect(output).toMatch(/"level":20,.*"authorization":"\[redacted\]".*"msg":"request answered"/);
        for (const secret of [adminToken, inferenceToken, wrongToken, dbPassword]) {
          expect([secret.slice(0, 8), output.includes(secret)]).toEqual([secret.slice(0, 8), false]);
        }
      } finally {
        child.kill('SIGKILL');
        await exited;
        await database.drop();
        await deleteNamespace(NATS_TEST_URL, namespace).catch(() => undefined);
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    }, 90_000);
  });
});
