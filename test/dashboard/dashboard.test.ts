/// <reference lib="dom" />
/**
 * The dashboard in a real browser (Debian's chromium through playwright-core; no browser is
 * downloaded) against a real gateway: the login, a quantization job's progress arriving live over
 * graphql-ws, the models page with the job's variant and evaluation, the live comparison after
 * traffic sent through the gateway, and the rollouts page without a rollouts plugin. Screenshots
 * go to test/artifacts/ (ignored by git). Needs the built dashboard (`npm run build`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { COPY_ENGINE, FASHION_MNIST, fimaqPlugin, quantize, TINY_CLASSIFIER, waitForStatus } from '../jobs/support/jobs-harness';
import { imagePixels, LABELS, png, post } from '../serving/support/serving-fixtures';

const ROOT = path.resolve(__dirname, '..', '..');
const BUILT = path.join(ROOT, 'dist', 'dashboard', 'index.html');
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
const CHROMIUM = '/usr/bin/chromium';
const COPY_STEPS = 25;

describe('dashboard in chromium', () => {
  let gateway: TestGateway;
  let browser: Browser;
  let page: Page;
  /** The dashboard signs in as a viewer: its queries must fit a viewer's GraphQL limits. */
  let viewerToken: string;
  const foreignRequests: string[] = [];
  const jobFrames: string[] = [];
  const engineEnv = { WORKER_ENGINE_MODULE: COPY_ENGINE, COPY_ENGINE_STEPS: String(COPY_STEPS), COPY_ENGINE_STEP_MS: '200' };

  beforeAll(async () => {
    if (!fs.existsSync(BUILT)) throw new Error(`${BUILT} is missing: run npm run build first`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // The embedded worker process inherits the environment: a stand-in engine with paced steps, so progress is observable.
    Object.assign(process.env, engineEnv);
    gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
    const registered = await gateway.graphql(`mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`, {
      input: { name: 'tiny', task: 'CLASSIFICATION', labels: LABELS, localPath: TINY_CLASSIFIER, preprocessing: { height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353] } },
    });
    expect(registered.errors).toBeUndefined();
    const created = await gateway.graphql<{ createApiToken: { token: string } }>('mutation { createApiToken(role: viewer, name: "dashboard") { token } }');
    viewerToken = created.data!.createApiToken.token;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('request', (request) => {
      if (!request.url().startsWith(gateway.url) && !request.url().startsWith(gateway.url.replace('http', 'ws'))) foreignRequests.push(request.url());
    });
    page.on('websocket', (socket) => socket.on('framereceived', ({ payload }) => {
      if (String(payload).includes('quantizationJobUpdated')) jobFrames.push(String(payload));
    }));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    for (const key of Object.keys(engineEnv)) delete process.env[key];
  });

  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `dashboard-${name}.png`) });

  test('a wrong token is refused; a viewer token signs in and is kept for the session', async () => {
    await page.goto(`${gateway.url}/dashboard`);
    await page.fill('input[name=token]', 'not-a-token-at-all');
    await page.click('button[type=submit]');
    await page.getByText('That token is not valid.').waitFor();
    await page.fill('input[name=token]', viewerToken);
    await page.click('button[type=submit]');
    await page.getByTestId('model-tiny').waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('vit-gateway-token'))).toBe(viewerToken);
    await page.reload();
    await page.getByTestId('model-tiny').waitFor();
  });

  test("a quantization job's progress updates live", async () => {
    const queued = await quantize(gateway, { bits: 'W4A4', evaluation: { path: FASHION_MNIST, split: 'test' } });
    expect(queued.errors).toBeUndefined();
    const id = queued.data!.quantizeModel.id;
    await page.goto(`${gateway.url}/dashboard/#/jobs`);
    const card = page.getByTestId(`job-${id}`);
    await card.waitFor();
    // Record every progress figure the page shows, as the DOM changes, until the job ends.
    const seen = await page.evaluate(async (jobId) => {
      const values = new Set<string>();
      const element = () => document.querySelector(`[data-testid="job-${jobId}"]`);
      return new Promise<string[]>((resolve) => {
        const record = () => {
          const text = element()?.querySelector('[data-testid=progress]')?.textContent;
          if (text) values.add(text);
          if (element()?.getAttribute('data-status') === 'succeeded') {
            observer.disconnect();
            resolve([...values]);
          }
        };
        const observer = new MutationObserver(record);
        observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
        record();
      });
    }, id);
    const percents = seen.map((s) => Number.parseFloat(s));
    expect(percents).toContain(100);
    expect(percents.filter((p) => p > 0 && p < 100).length).toBeGreaterThanOrEqual(3);
    expect(jobFrames.length).toBeGreaterThanOrEqual(3);
    await waitForStatus(gateway, id, ['succeeded']);
    await shot('jobs');
  }, 120_000);

  test('models and their variants: precision, size, method, lineage, evaluation', async () => {
    await page.goto(`${gateway.url}/dashboard/#/models`);
    const row = page.getByTestId('variant-tiny-w4a4-rtn');
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    expect(cells.slice(0, 2)).toEqual(['w4a4-rtn', 'W4A4']);
    expect(cells[2]).toMatch(/KiB|MiB/);
    expect(cells[3]).toBe('rtn');
    expect(cells[4]).toBe('fp32 → w4a4-rtn');
    expect(cells[6]).toMatch(/top1 0\.\d+/);
    expect(await page.getByTestId('variant-tiny-fp32').locator('td').nth(4).textContent()).toBe('original');
    await shot('models');
  });

  test('the live comparison renders the traffic sent through the gateway', async () => {
    for (let i = 0; i < 30; i++) {
      const reply = await post(gateway, '/v2/models/tiny/classify', png(imagePixels(i)), { 'content-type': 'image/png' });
      expect(reply.status).toBe(200);
      const predicted = LABELS.indexOf((reply.json.predictions as Array<{ label: string }>)[0].label);
      // The truth agrees with the parent on 2 rows of 3.
      const label = LABELS[i % 3 === 0 ? (predicted + 1) % LABELS.length : predicted];
      expect((await post(gateway, '/v2/models/tiny/feedback', { id: reply.headers.get('x-request-id'), label })).status).toBe(200);
    }
    await page.goto(`${gateway.url}/dashboard/#/models/tiny`);
    const parent = page.getByTestId('window-fp32');
    await parent.locator('td').nth(1).filter({ hasText: /^30$/ }).waitFor({ timeout: 20_000 });
    await page.getByTestId('window-w4a4-rtn').locator('td').nth(8).filter({ hasText: '30 / 0' }).waitFor({ timeout: 20_000 });
    const parentCells = await parent.locator('td').allTextContents();
    expect(parentCells[3]).toMatch(/ms \/ .* ms \/ .* ms/);
    expect(parentCells[5]).toMatch(/^\d+\.\d % \[/);
    expect(await page.getByTestId('traffic-split').textContent()).toMatch(/fp32: 100 % of answers.*w4a4-rtn: shadow, 100 % mirrored/);
    expect(await page.getByTestId('comparison').textContent()).toMatch(/compute p95/);
    for (const chart of ['chart-rate', 'chart-latency', 'chart-compute', 'chart-quality', 'chart-drops']) {
      await page.getByTestId(chart).locator('canvas').waitFor();
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-comparison.png'), fullPage: true });
  });

  test('the rollouts page says so when no rollouts plugin is loaded', async () => {
    await page.goto(`${gateway.url}/dashboard/#/rollouts`);
    await page.getByTestId('no-rollouts').waitFor();
    await shot('rollouts');
  });

  test('everything the pages loaded came from the gateway (no CDN)', () => {
    expect(foreignRequests).toEqual([]);
  });
});
