import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { FIXTURES, startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { addVariant, eventually, imagePixels, png, post, registerModel, setPolicy, tensorValues } from './support/serving-fixtures';
import { variantFigures } from './support/variant-figures';

const MODEL = 'lookalike';
const GALLERY_SIZE = 30;
const K = 10;

async function embeddingsOf(file: string, images: Uint8Array[]): Promise<number[][]> {
  const session = await ort.InferenceSession.create(path.join(FIXTURES, file));
  try {
    const data = Float32Array.from(images.flatMap((p) => tensorValues(p)));
    const { embedding } = await session.run({ input: new ort.Tensor('float32', data, [images.length, 1, 28, 28]) });
    const flat = Array.from(embedding.data as Float32Array);
    return images.map((_, i) => flat.slice(i * 16, (i + 1) * 16));
  } finally {
    await session.release();
  }
}

const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);
const topIds = (query: number[], gallery: number[][]) =>
  gallery.map((row, i) => ({ id: `item-${i}`, score: dot(row, query) })).sort((a, b) => b.score - a.score).slice(0, K).map((n) => n.id);

function retrievalSuite(dialect: Dialect) {
  let gateway: TestGateway;
  const galleryImages = Array.from({ length: GALLERY_SIZE }, (_, i) => imagePixels(500 + i));
  const upload = (items: Array<{ id: string; image: string }>) => post(gateway, `/v2/models/${MODEL}/gallery`, { items });
  const search = (pixels: Uint8Array, query = '') => post(gateway, `/v2/models/${MODEL}/search${query}`, png(pixels), { 'content-type': 'image/png' });

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect, env: { SERVING_GALLERY_MAX_ITEMS: '40' } });
    await registerModel(gateway, MODEL, 'tiny-embedder.onnx', 'RETRIEVAL');
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-embedder-q.onnx');
    await registerModel(gateway, 'classifier', 'tiny-classifier.onnx');
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('search before a gallery exists says how to make one', async () => {
    const reply = await search(imagePixels(1));
    expect(reply.status).toBe(404);
    expect(reply.json.error).toMatch(/has no gallery yet; POST images to \/v2\/models\/lookalike\/gallery/);
  });

  test('gallery upload, then search answers the nearest ids by cosine', async () => {
    const reply = await upload(galleryImages.map((pixels, i) => ({ id: `item-${i}`, image: png(pixels).toString('base64') })));
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ model_name: MODEL, size: GALLERY_SIZE });

    const found = await search(galleryImages[5], '?k=3');
    expect(found.status).toBe(200);
    const results = found.json.results as Array<{ id: string; score: number }>;
    expect(results).toHaveLength(3);
    expect(results[0].id).toBe('item-5');
    expect(results[0].score).toBeCloseTo(1, 5);
    expect(results[0].score).toBeGreaterThanOrEqual(results[1].score);
    const gallery = await embeddingsOf('tiny-embedder.onnx', galleryImages);
    expect(results.map((r) => r.id)).toEqual(topIds(gallery[5], gallery).slice(0, 3));
    expect(found.json).toMatchObject({ model_name: MODEL, model_version: 'fp32' });

    // Re-uploading an id replaces its image.
    const replaced = await upload([{ id: 'item-5', image: png(imagePixels(999)).toString('base64') }]);
    expect(replaced.json.size).toBe(GALLERY_SIZE);
    expect(((await search(imagePixels(999), '?k=1')).json.results as Array<{ id: string }>)[0].id).toBe('item-5');
    await upload([{ id: 'item-5', image: png(galleryImages[5]).toString('base64') }]);
  });

  test('a shadow encoder is compared by cosine and by overlap of its gallery neighbours', async () => {
    const since = new Date();
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'w4a4', mirrorPercent: 100 }] });
    const queries = Array.from({ length: 6 }, (_, i) => imagePixels(700 + i));
    for (const pixels of queries) expect((await search(pixels)).json.model_version).toBe('fp32');

    const [fpGallery, qGallery, fpQueries, qQueries] = await Promise.all([
      embeddingsOf('tiny-embedder.onnx', galleryImages),
      embeddingsOf('tiny-embedder-q.onnx', galleryImages),
      embeddingsOf('tiny-embedder.onnx', queries),
      embeddingsOf('tiny-embedder-q.onnx', queries),
    ]);
    const cosines = fpQueries.map((a, i) => dot(a, qQueries[i]));
    const overlaps = fpQueries.map((a, i) => {
      const mine = new Set(topIds(a, fpGallery));
      return topIds(qQueries[i], qGallery).filter((id) => mine.has(id)).length / K;
    });
    const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;

    await eventually(async () => {
      const figures = await variantFigures(gateway, MODEL, since, 'w4a4');
      expect([...figures.keys()]).toEqual(['w4a4']);
      const shadow = figures.get('w4a4')!;
      expect(shadow.compared).toBe(queries.length);
      expect(shadow.meanCosine).toBeCloseTo(mean(cosines), 4);
      expect(shadow.meanOverlapAtK).toBeCloseTo(mean(overlaps), 6);
      expect(shadow.top1Agreement).toBeNull();
    });
  });

  test.each([
    ['a gallery for a classifier', '/v2/models/classifier/gallery', { items: [{ id: 'a', image: '' }] }, 400, /galleries belong to retrieval models/],
    ['an item that is not an image', `/v2/models/${MODEL}/gallery`, { items: [{ id: 'x', image: Buffer.from('hello').toString('base64') }] }, 400, /gallery item "x": not a PNG or JPEG/],
    ['duplicate ids in one upload', `/v2/models/${MODEL}/gallery`, { items: [{ id: 'a', image: 'AA==' }, { id: 'a', image: 'AA==' }] }, 400, /ids must be distinct/],
    ['an empty upload', `/v2/models/${MODEL}/gallery`, { items: [] }, 400, /the gallery upload is/],
    ['more items than the gallery holds', `/v2/models/${MODEL}/gallery`, { items: Array.from({ length: 11 }, (_, i) => ({ id: `more-${i}`, image: png(imagePixels(i)).toString('base64') })) }, 400, /holds at most 40 items/],
  ])('the gallery refuses %s', async (_name, urlPath, body, status, message) => {
    const reply = await post(gateway, urlPath, body);
    expect(reply.status).toBe(status);
    expect(reply.json.error).toMatch(message);
  });

  test.each([
    ['k out of range', `/v2/models/${MODEL}/search?k=0`, 400, /k must be an integer in 1..1000/],
    ['a classifier', '/v2/models/classifier/search', 400, /use \/classify or \/infer/],
    ['an unknown model', '/v2/models/nope/search', 404, /no model named "nope"/],
  ])('search refuses %s', async (_name, urlPath, status, message) => {
    const reply = await post(gateway, urlPath, png(imagePixels(1)), { 'content-type': 'image/png' });
    expect(reply.status).toBe(status);
    expect(reply.json.error).toMatch(message);
  });
}

describe('retrieval: gallery, search, shadow comparison (SQLite)', () => retrievalSuite('sqlite'));
describeWithPostgres('retrieval: gallery, search, shadow comparison (PostgreSQL)', () => retrievalSuite('postgres'));
