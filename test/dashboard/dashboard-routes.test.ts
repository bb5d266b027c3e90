import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { dashboardRoutes } from '../../gateway/http/dashboard-routes';

async function serve(directory: string): Promise<{ url: string; close: () => Promise<void> }> {
  const app = express();
  app.use(dashboardRoutes(directory));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('dashboard routes', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-dashboard-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('without a build, /dashboard says how to make one', async () => {
    const server = await serve(dir);
    try {
      for (const url of ['/dashboard', '/dashboard/', '/dashboard/assets/x.js']) {
        const response = await fetch(server.url + url);
        expect(response.status).toBe(404);
        expect(await response.json()).toEqual({ error: expect.stringMatching(/the dashboard is not built .*run npm run build/) });
      }
    } finally {
      await server.close();
    }
  });

  test('serves the build: index at /dashboard/, hashed assets cached for good, nothing outside it', async () => {
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>x</title>');
    fs.mkdirSync(path.join(dir, 'assets'));
    fs.writeFileSync(path.join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
    fs.writeFileSync(path.join(os.tmpdir(), 'gw-dashboard-outside.txt'), 'secret');
    const server = await serve(dir);
    try {
      const bare = await fetch(`${server.url}/dashboard`, { redirect: 'manual' });
      expect([bare.status, bare.headers.get('location')]).toEqual([301, '/dashboard/']);
      const index = await fetch(`${server.url}/dashboard/`);
      expect([index.status, await index.text()]).toEqual([200, '<!doctype html><title>x</title>']);
      const asset = await fetch(`${server.url}/dashboard/assets/index-abc.js`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('cache-control')).toMatch(/immutable/);
      expect((await fetch(`${server.url}/dashboard/assets/missing.js`)).status).toBe(404);
      expect((await fetch(`${server.url}/dashboard/..%2Fgw-dashboard-outside.txt`)).status).toBeGreaterThanOrEqual(400);
    } finally {
      await server.close();
      fs.rmSync(path.join(os.tmpdir(), 'gw-dashboard-outside.txt'), { force: true });
    }
  });
});
