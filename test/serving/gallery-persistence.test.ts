import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { createTestDatabase, describeWithPostgres } from '../support/services';
import { addVariant, eventually, imagePixels, png, post, registerModel } from './support/serving-fixtures';

/**
 * Retrieval galleries are stored: a restarted gateway searches the gallery it had, a second
 * replica on the same database (and shared artifact storage) sees an upload made on the first,
 * and a variant that starts serving embeds the stored gallery in the background with progress.
 */

const MODEL = 'lookalike';
const items = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `item-${from + i}`, image: png(imagePixels(700 + from + i)).toString('base64') }));

async function searchTop(gateway: TestGateway, seed: number): Promise<{ status: number; id?: string }> {
  const reply = await post(gateway, `/v2/models/${MODEL}/search?k=1`, png(imagePixels(seed)), { 'content-type': 'image/png' });
  return { status: reply.status, id: (reply.json.results as Array<{ id: string }> | undefined)?.[0]?.id };
}

async function galleryStatus(gateway: TestGateway) {
  const reply = await gateway.graphql<{ gallery: { size: number; revision: number; embeddings: Array<{ variantTag: string; embedded: number; total: number }> } }>(
    `query { gallery(model: "${MODEL}") { size revision embeddings { variantTag embedded total } } }`,
  );
  if (reply.errors) throw new Error(reply.errors[0].message);
  return reply.data!.gallery;
}

function persistenceSuite(dialect: 'sqlite' | 'postgres') {
  let dataDir: string;
  let database: { url: string; drop: () => Promise<void> } | undefined;
  const running: TestGateway[] = [];
  const start = async () => {
    const gateway = await startTestGateway({ env: { DATA_DIR: dataDir, ...(database ? { DATABASE_URL: database.url } : {}) } });
    running.push(gateway);
    return gateway;
  };

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gallery-store-'));
    if (dialect === 'postgres') database = await createTestDatabase();
  });
  afterAll(async () => {
    for (const gateway of running) await gateway.stop();
    await database?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('a restarted gateway searches the gallery it had', async () => {
    const first = await start();
    await registerModel(first, MODEL, 'tiny-embedder.onnx', 'RETRIEVAL');
    expect((await post(first, `/v2/models/${MODEL}/gallery`, { items: items(0, 12) })).status).toBe(200);
    expect(await searchTop(first, 705)).toEqual({ status: 200, id: 'item-5' });
    await first.stop();
    running.splice(running.indexOf(first), 1);

    const second = await start();
    expect(await searchTop(second, 705)).toEqual({ status: 200, id: 'item-5' });
    expect(await galleryStatus(second)).toMatchObject({ size: 12, revision: 1 });
    const audit = await second.graphql<{ auditLog: Array<{ action: string }> }>('{ auditLog { action } }');
    expect(audit.data?.auditLog.map((e) => e.action)).toContain('gallery.upload');
  });

  test('an upload on one replica reaches the other', async () => {
    const [one] = running;
    const other = await start();
    expect(await searchTop(other, 705)).toEqual({ status: 200, id: 'item-5' });
    expect((await post(one, `/v2/models/${MODEL}/gallery`, { items: items(20, 3) })).status).toBe(200);
    await eventually(async () => expect(await searchTop(other, 721)).toEqual({ status: 200, id: 'item-21' }), 8000);
    expect(await galleryStatus(other)).toMatchObject({ size: 15, revision: 2 });
  });

  test('a variant that starts serving embeds the stored gallery in the background, with progress', async () => {
    const [gateway] = running;
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-embedder-q.onnx');
    await eventually(async () => {
      const status = await galleryStatus(gateway);
      expect(status.embeddings.find((e) => e.variantTag === 'w4a4')).toEqual({ variantTag: 'w4a4', embedded: 15, total: 15 });
    }, 10000);
    const versioned = await post(gateway, `/v2/models/${MODEL}/versions/w4a4/search?k=1`, png(imagePixels(721)), { 'content-type': 'image/png' });
    expect((versioned.json.results as Array<{ id: string }>)[0].id).toBe('item-21');
  });
}

describe('stored galleries (SQLite)', () => persistenceSuite('sqlite'));
describeWithPostgres('stored galleries (PostgreSQL)', () => persistenceSuite('postgres'));
