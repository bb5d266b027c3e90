import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { imageToTensor, openDataset, type ImageBatch, type ImageDataset } from '../../workers/data';
import { FMNIST_PRE, SAMPLE_DIR, preprocessing, tempDir } from './fixtures';

type ColorType = 0 | 2 | 6;

/** A PNG of `rgba` pixels written as gray (0), RGB (2) or RGBA (6). */
function png(width: number, height: number, rgba: (p: number) => [number, number, number, number], colorType: ColorType): Buffer {
  const img = new PNG({ width, height });
  for (let p = 0; p < width * height; p++) img.data.set(rgba(p), 4 * p);
  return PNG.sync.write(img, { colorType, inputColorType: 6, inputHasAlpha: true });
}

function grayPng(width: number, height: number, value: (p: number) => number): Buffer {
  return png(width, height, (p) => [value(p), value(p), value(p), 255], 0);
}

async function allBatches(ds: ImageDataset, batchSize = 64): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of ds.batches({ batchSize })) out.push(b);
  return out;
}

describe('image folder reader and imageToTensor', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  function put(relPath: string, buf: Buffer): string {
    const path = join(tmp.dir, relPath);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, buf);
    return path;
  }

  const small = preprocessing({ height: 2, width: 2, mean: [0], std: [1] });

  it('labels images by class subfolder: numbered folders, card class names, else sorted order', async () => {
    put('numbered/3/a.png', grayPng(2, 2, () => 0));
    put('numbered/0/b.png', grayPng(2, 2, () => 0));
    put('named/Ankle boot/a.png', grayPng(2, 2, () => 0));
    put('named/T-shirt_top/b.jpg', encodeJpeg({ width: 2, height: 2, data: Buffer.alloc(16, 255) }, 95).data);
    put('named/notes.txt', Buffer.from('ignored'));
    const numbered = await openDataset({ path: join(tmp.dir, 'numbered') }, small);
    expect(Array.from((await allBatches(numbered))[0].labels ?? [])).toEqual([0, 3]);
    expect(numbered.classCount).toBe(4); // numbered folders name no classes: the largest label + 1
    const classNames = ['T-shirt/top', 'Trouser', 'Ankle boot'];
    const named = await openDataset({ path: join(tmp.dir, 'named'), classNames }, small);
    expect(Array.from((await allBatches(named))[0].labels ?? [])).toEqual([2, 0]);
    expect(named.classNames).toEqual(classNames);
    expect(named.classCount).toBe(3);
    const sorted = await openDataset({ path: join(tmp.dir, 'named') }, small);
    expect(Array.from((await allBatches(sorted))[0].labels ?? [])).toEqual([0, 1]);
    expect(sorted.classNames).toEqual(['Ankle boot', 'T-shirt_top']);
  });

  it('reads images directly in the folder as an unlabeled dataset', async () => {
    put('flat/a.png', grayPng(2, 2, () => 255));
    const ds = await openDataset({ path: join(tmp.dir, 'flat') }, small);
    expect([ds.size, ds.hasLabels, ds.classCount]).toEqual([1, false, undefined]);
    expect(Array.from((await allBatches(ds))[0].data)).toEqual([1, 1, 1, 1]);
  });

  it('gives the same tensor as the IDX reader for the same pixels', async () => {
    const [idxBatch] = await allBatches(await openDataset({ path: SAMPLE_DIR, split: 'test' }, FMNIST_PRE), 1);
    const pixels = idxBatch.data.map((x) => Math.round((x * 0.353 + 0.286) * 255));
    const fromPng = imageToTensor(grayPng(28, 28, (p) => pixels[p]), FMNIST_PRE);
    expect(fromPng.dims).toEqual([1, 1, 28, 28]);
    fromPng.data.forEach((v, i) => expect(v).toBeCloseTo(idxBatch.data[i], 5));
  });

  it('converts between gray and RGB only where unambiguous', async () => {
    const rgbPre = preprocessing({ height: 2, width: 2, channels: 3, layout: 'NHWC', mean: [0, 0, 0], std: [1, 1, 1] });
    const gray = grayPng(2, 2, (p) => p * 50);
    expect(Array.from(imageToTensor(gray, rgbPre).data.subarray(0, 6)).map((x) => Math.round(x * 255))).toEqual([0, 0, 0, 50, 50, 50]);
    const grayAsRgb = png(2, 2, (p) => [p * 50, p * 50, p * 50, 255], 2);
    expect(Array.from(imageToTensor(grayAsRgb, small).data).map((x) => Math.round(x * 255))).toEqual([0, 50, 100, 150]);
    const color = png(2, 2, () => [200, 10, 10, 255], 2);
    expect(() => imageToTensor(color, small, 'red.png')).toThrow(/red.png: image is in color \(RGB\) but the model expects 1 gray channel/);
    expect(Array.from(imageToTensor(color, rgbPre).data.subarray(0, 3)).map((x) => Math.round(x * 255))).toEqual([200, 10, 10]);
    const grayJpeg = encodeJpeg({ width: 2, height: 2, data: Buffer.alloc(16, 128) }, 90).data;
    expect(Math.round(imageToTensor(grayJpeg, small).data[0] * 255)).toBeGreaterThan(120);
  });

  describe('bad input', () => {
    it('rejects images of the wrong size, naming the file', async () => {
      put('cls/0/ok.png', grayPng(2, 2, () => 0));
      put('cls/1/big.png', grayPng(3, 2, () => 0));
      const ds = await openDataset({ path: join(tmp.dir, 'cls') }, small);
      await expect(allBatches(ds)).rejects.toThrow(/big.png: image is 3x2 \(WxH\) but the model expects 2x2; resize the images first/);
    });

    it('rejects color images for a gray model when opening the folder', async () => {
      put('cls/0/red.png', png(2, 2, () => [255, 0, 0, 255], 2));
      await expect(openDataset({ path: join(tmp.dir, 'cls') }, small)).rejects.toThrow(/red.png: image is in color/);
    });

    it('rejects transparency, corrupt files and non-images', () => {
      expect(() => imageToTensor(png(2, 2, () => [0, 0, 0, 10], 6), small)).toThrow(/transparent pixels/);
      const good = grayPng(2, 2, () => 0);
      expect(() => imageToTensor(good.subarray(0, 30), small, 'cut.png')).toThrow(/cut.png: corrupt PNG/);
      expect(() => imageToTensor(Buffer.from([0xff, 0xd8, 0, 1, 2]), small, 'cut.jpg')).toThrow(/cut.jpg: corrupt JPEG/);
      expect(() => imageToTensor(Buffer.from('GIF89a'), small, 'x.gif')).toThrow(/x.gif: not a PNG or JPEG image/);
    });

    it('rejects an empty or missing folder and unknown class folders', async () => {
      mkdirSync(join(tmp.dir, 'empty'));
      await expect(openDataset({ path: join(tmp.dir, 'empty') }, small)).rejects.toThrow(/no PNG or JPEG images found/);
      await expect(openDataset({ path: join(tmp.dir, 'missing') }, small)).rejects.toThrow(/dataset not found/);
      put('cls/Sandal/a.png', grayPng(2, 2, () => 0));
      await expect(openDataset({ path: join(tmp.dir, 'cls'), classNames: ['Bag'] }, small)).rejects.toThrow(/Sandal: folder name is not one of the model's classes \(Bag\)/);
    });
  });
});
