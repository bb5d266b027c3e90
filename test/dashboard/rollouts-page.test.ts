/// <reference lib="dom" />
/**
 * The rollouts page against the rollouts plugin: a rollout started through GraphQL shows its step
 * timeline (no decision yet: the controller's interval is an hour) in Debian's chromium.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { createRolloutsPlugin } from '../../plugins/rollouts';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';
import { addVariant, registerModel } from '../serving/support/serving-fixtures';

const ROOT = path.resolve(__dirname, '..', '..');
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');

describe('dashboard rollouts page with the rollouts plugin', () => {
  let gateway: TestGateway;
  let browser: Browser;

  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'dashboard', 'index.html'))) throw new Error('dist/dashboard is missing: run npm run build first');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    gateway = await startTestGateway({ plugins: [createRolloutsPlugin({ config: { intervalMs: 3_600_000, leaseMs: 3_600_001 } })] });
    await registerModel(gateway, 'shop', 'tiny-classifier.onnx');
    await addVariant(gateway, 'shop', 'w4a4', 'tiny-classifier-q.onnx');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
  });

  test('a live rollout shows its steps, the current one marked', async () => {
    const started = await gateway.graphql<{ startRollout: { id: string } }>('mutation { startRollout(input: { model: "shop", candidate: "w4a4" }) { id } }');
    expect(started.errors).toBeUndefined();
    const id = started.data!.startRollout.id;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.addInitScript((token) => sessionStorage.setItem('vit-gateway-token', token), ADMIN_TOKEN);
    await page.goto(`${gateway.url}/dashboard/#/rollouts`);
    const card = page.getByTestId(`rollout-${id}`);
    await card.waitFor();
    expect(await card.locator('h2').textContent()).toMatch(/shop: w4a4 against fp32 running/);
    expect(await card.locator('.timeline li').allTextContents()).toEqual(['step 1: 5 %', 'step 2: 25 %', 'step 3: 50 %', 'step 4: 100 %']);
    expect(await card.locator('.timeline li.current').textContent()).toBe('step 1: 5 %');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-rollouts-live.png') });
  });
});
