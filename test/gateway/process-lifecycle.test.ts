import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Starts the built gateway as `npm start` does (with its embedded worker processes); `npm test`
 * builds before it runs jest.
 */
const MAIN = path.join(ROOT, 'dist', 'gateway', 'main.js');

function startMain(dataDir: string) {
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    // Outside tests NODE_ENV is not "test"; libraries that install their own signal handlers
    // only do so then, so the test must run the process the way users do.
    env: { ...process.env, NODE_ENV: 'production', DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stdout = '';
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
      const match = /gateway ready at (http:\/\/\S+) /.exec(output);
      if (match) resolve(match[1]);
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before it was ready:\n${output}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, ready, exited, output: () => output, stdout: () => stdout };
}

describe('the gateway process', () => {
  beforeAll(() => {
    if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
  });

  test.each(['SIGTERM', 'SIGINT'] as const)('prints its admin token once, serves, and exits 0 on %s', async (signal) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-main-'));
    try {
      const first = startMain(dataDir);
      const url = await first.ready;
      expect(first.output()).toMatch(/created an admin token[\s\S]*vgw_[A-Za-z0-9_-]{43}/);
      // The token goes to the terminal (stderr), never into the JSON log stream on stdout.
      expect(first.stdout()).not.toMatch(/vgw_/);
      expect(await (await fetch(`${url}/v2/health/ready`)).json()).toEqual({ ready: true });
      first.child.kill(signal);
      expect(await first.exited).toBe(0);

      const second = startMain(dataDir);
      await second.ready;
      expect(second.output()).not.toMatch(/admin token/);
      second.child.kill(signal);
      expect(await second.exited).toBe(0);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
