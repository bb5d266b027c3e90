/// <reference lib="dom" />
/**
 * The live comparison page of a retrieval model in Debian's chromium: the demo encoder
 * (deploy/demo/models/vit-fmnist-emb-op17.onnx) answers Fashion-MNIST searches against a labelled
 * gallery, a noisy copy of it shadows, feedback names each query's class; the page shows cosine,
 * overlap@k, rank correlation, recall@k and mAP@k with their intervals, and recall@k and mAP@k in
 * the significance table. Needs the built dashboard (`npm run build`).
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium, type Browser } from 'playwright-core';
import { decodeModel, encodeModel, onnx } from '../../workers/engine/onnx/proto';
import { tensorFromProto, tensorToProto } from '../../workers/engine/onnx/tensor';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';
import { addVariantBytes, png, post, setPolicy } from '../serving/support/serving-fixtures';

const ROOT = path.resolve(__dirname, '..', '..');
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts');
const ENCODER = path.join(ROOT, 'deploy', 'demo', 'models', 'vit-fmnist-emb-op17.onnx');
const FASHION_MNIST = path.join(ROOT, 'deploy', 'demo', 'data', 'fashion-mnist');
const MODEL = 'fmnist-encoder';
const GALLERY = 60;
const QUERIES = 30;

/** The first `count` Fashion-MNIST test images (28×28 gray) and their class indices. */
function fashionMnist(count: number): { images: Uint8Array[]; labels: number[] } {
  const images = zlib.gunzipSync(fs.readFileSync(path.join(FASHION_MNIST, 't10k-images-idx3-ubyte.gz')));
  const labels = zlib.gunzipSync(fs.readFileSync(path.join(FASHION_MNIST, 't10k-labels-idx1-ubyte.gz')));
  return {
    images: Array.from({ length: count }, (_, i) => images.subarray(16 + i * 784, 16 + (i + 1) * 784)),
    labels: Array.from(labels.subarray(8, 8 + count)),
  };
}

/** The encoder with every float weight scaled by seeded noise of ±`spread`: a worse variant that still works. */
function noisyEncoder(spread: number): Buffer {
  const model = decodeModel(fs.readFileSync(ENCODER));
  let state = 7;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const graph = model.graph as onnx.GraphProto;
  graph.initializer = graph.initializer.map((t) => {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT) return t;
    const { shape, data } = tensorFromProto(t);
    return tensorToProto(t.name as string, onnx.TensorProto.DataType.FLOAT, shape, Array.from(data, (v) => v * (1 + spread * (random() - 0.5)))) as onnx.TensorProto;
  });
  return Buffer.from(encodeModel(model));
}

describe('dashboard: live comparison of a retrieval model', () => {
  let gateway: TestGateway;
  let browser: Browser;

  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'dashboard', 'index.html'))) throw new Error('dist/dashboard is missing: run npm run build first');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    gateway = await startTestGateway();
    const registered = await gateway.graphql('mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }', { input: { name: MODEL, localPath: ENCODER } });
    expect(registered.errors).toBeUndefined();
    await addVariantBytes(gateway, MODEL, 'noisy', noisyEncoder(0.6));
    expect((await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'noisy', mirrorPercent: 100 }] })).errors).toBeUndefined();
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
  });

  test('cosine, overlap@k, rank correlation, recall@k and mAP@k with intervals, from real searches and feedback', async () => {
    const { images, labels } = fashionMnist(GALLERY + QUERIES);
    const upload = await post(gateway, `/v2/models/${MODEL}/gallery`, {
      items: images.slice(0, GALLERY).map((pixels, i) => ({ id: `g${i}`, image: png(pixels).toString('base64'), label: `class-${labels[i]}` })),
    });
    expect(upload.status).toBe(200);
    for (let q = GALLERY; q < GALLERY + QUERIES; q++) {
      const reply = await post(gateway, `/v2/models/${MODEL}/search?k=3`, png(images[q]), { 'content-type': 'image/png' });
      expect(reply.status).toBe(200);
      const label = `class-${labels[q]}`;
      // Feedback naming a class no gallery item has would be refused: such a query gets none.
      if (!labels.slice(0, GALLERY).includes(labels[q])) continue;
      expect((await post(gateway, `/v2/models/${MODEL}/feedback`, { id: reply.json.id, label })).status).toBe(200);
    }

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.addInitScript((token) => sessionStorage.setItem('vit-gateway-token', token), ADMIN_TOKEN);
    await page.goto(`${gateway.url}/dashboard/#/models/${MODEL}`);
    const shadow = page.getByTestId('window-noisy');
    await shadow.locator('td').nth(10).filter({ hasText: `${QUERIES} / 0` }).waitFor({ timeout: 20_000 });
    const headers = await page.getByTestId('window').locator('th').allTextContents();
    expect(headers.slice(5, 10)).toEqual(['cosine [95 %]', 'overlap@10 [95 %]', 'rank corr. [95 %]', 'recall@10 [95 %]', 'mAP@10 [95 %]']);
    const withInterval = /^-?\d[\d.]*( %)? \[-?\d[\d.]*( %)?, -?\d[\d.]*( %)?\]$/;
    const shadowCells = await shadow.locator('td').allTextContents();
    for (const cell of shadowCells.slice(5, 10)) expect(cell).toMatch(withInterval);
    const parentCells = await page.getByTestId('window-fp32').locator('td').allTextContents();
    expect(parentCells.slice(5, 8)).toEqual(['—', '—', '—']); // the answering variant is not compared with itself
    expect(parentCells[8]).toMatch(withInterval);
    expect(parentCells[9]).toMatch(withInterval);
    await page.getByTestId('compare-recall').waitFor();
    expect(await page.getByTestId('compare-recall').textContent()).toMatch(/recall@10 \(paired, McNemar p = [\d.]+\)/);
    expect(await page.getByTestId('compare-map').textContent()).toMatch(/mAP@10 \(paired\)/);
    await page.getByTestId('chart-retrieval').locator('canvas').waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-retrieval.png'), fullPage: true });
  }, 120_000);
});
