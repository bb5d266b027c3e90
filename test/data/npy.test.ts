import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, type ImageBatch, type ImageDataset } from '../../workers/data';
import { npyBuffer, pattern, preprocessing, tempDir } from './fixtures';

async function firstBatch(ds: ImageDataset, batchSize = 16): Promise<ImageBatch> {
  for await (const b of ds.batches({ batchSize })) return b;
  throw new Error('empty dataset');
}

describe('NPY reader', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const gray = preprocessing({ height: 2, width: 3, mean: [0], std: [1] });
  const rgb = preprocessing({ height: 2, width: 3, channels: 3, mean: [0, 0, 0], std: [1, 1, 1] });

  function write(name: string, buf: Buffer): string {
    const path = join(tmp.dir, name);
    writeFileSync(path, buf);
    return path;
  }

  it('reads uint8 [N,H,W] with labels from images.labels.npy', async () => {
    const path = write('images.npy', npyBuffer('|u1', [2, 2, 3], pattern(12)));
    write('images.labels.npy', npyBuffer('<i8', [2], BigInt64Array.from([7n, 3n])));
    const ds = await openDataset({ path }, gray);
    const batch = await firstBatch(ds);
    expect(batch.dims).toEqual([2, 1, 2, 3]);
    expect(Array.from(batch.labels ?? [])).toEqual([7, 3]);
    expect(batch.data[5]).toBeCloseTo(pattern(12)[5] / 255, 6);
  });

  it('reads float32 pixels in [0,1] as they are, unlabeled without a labels file', async () => {
    const pixels = Float32Array.from({ length: 6 }, (_, i) => i / 10);
    const ds = await openDataset({ path: write('f.npy', npyBuffer('<f4', [1, 2, 3], pixels)) }, gray);
    expect(ds.hasLabels).toBe(false);
    const batch = await firstBatch(ds);
    pixels.forEach((p, i) => expect(batch.data[i]).toBeCloseTo(p, 6));
  });

  it('tells [N,H,W,C] from [N,C,H,W] by the model size and converts layouts', async () => {
    // One RGB image: channel c of pixel p holds 10 * p + c.
    const hwc = Uint8Array.from({ length: 18 }, (_, i) => 10 * Math.floor(i / 3) + (i % 3));
    const chw = Uint8Array.from({ length: 18 }, (_, i) => 10 * (i % 6) + Math.floor(i / 6));
    const a = await firstBatch(await openDataset({ path: write('hwc.npy', npyBuffer('|u1', [1, 2, 3, 3], hwc)) }, rgb));
    const b = await firstBatch(await openDataset({ path: write('chw.npy', npyBuffer('|u1', [1, 3, 2, 3], chw)) }, rgb));
    expect(b.data).toEqual(a.data);
    // NCHW output: channel 1 of pixel 4 sits at 1 * 6 + 4.
    expect(a.data[6 + 4] * 255).toBeCloseTo(41, 3);
  });

  it('takes labels from an explicit file', async () => {
    const path = write('x.npy', npyBuffer('|u1', [2, 2, 3], pattern(12)));
    const labels = write('y.npy', npyBuffer('<i4', [2], Int32Array.from([1, 0])));
    const batch = await firstBatch(await openDataset({ path, labelsPath: labels }, gray));
    expect(Array.from(batch.labels ?? [])).toEqual([1, 0]);
  });

  describe('bad input', () => {
    const open = (buf: Buffer, pre = gray) => openDataset({ path: write('bad.npy', buf) }, pre);

    it('rejects truncated data and a truncated header', async () => {
      const good = npyBuffer('|u1', [2, 2, 3], pattern(12));
      await expect(open(good.subarray(0, good.length - 5))).rejects.toThrow(/truncated NPY file: shape \(2, 2, 3\) needs 12 data bytes, file holds 7/);
      await expect(open(good.subarray(0, 30))).rejects.toThrow(/truncated NPY header/);
    });

    it('rejects bad magic, corrupt headers, Fortran order and unsupported dtypes', async () => {
      await expect(open(Buffer.from('not numpy at all'))).rejects.toThrow(/not an NPY file/);
      const corrupt = npyBuffer('|u1', [2, 2, 3], pattern(12));
      corrupt.write('XXXXXXX', corrupt.indexOf("'shape'"), 'latin1');
      await expect(open(corrupt)).rejects.toThrow(/corrupt NPY header/);
      await expect(open(npyBuffer('|u1', [2, 2, 3], pattern(12), true))).rejects.toThrow(/Fortran-ordered/);
      await expect(open(npyBuffer('<f8', [1, 2, 3], new Float64Array(6)))).rejects.toThrow(/must be uint8 or float32, got <f8/);
      await expect(open(npyBuffer('<c8', [1, 2, 3], new Float32Array(12)))).rejects.toThrow(/dtype <c8 is not supported/);
    });

    it('rejects images whose size or channels do not fit the model', async () => {
      await expect(open(npyBuffer('|u1', [1, 3, 3], pattern(9)))).rejects.toThrow(/image is 3x3 \(WxH\) but the model expects 3x2/);
      await expect(open(npyBuffer('|u1', [1, 4, 4, 4], pattern(64)))).rejects.toThrow(/no 2x3 \(HxW\) plane/);
      await expect(open(npyBuffer('|u1', [1, 2, 3, 4], pattern(24)))).rejects.toThrow(/image has 4 channels/);
      await expect(open(npyBuffer('|u1', [6], pattern(6)))).rejects.toThrow(/must be shaped \[N,H,W\]/);
    });

    it('rejects labels of the wrong length or type, and a missing explicit labels file', async () => {
      const path = write('x.npy', npyBuffer('|u1', [2, 2, 3], pattern(12)));
      write('x.labels.npy', npyBuffer('|u1', [3], pattern(3)));
      await expect(openDataset({ path }, gray)).rejects.toThrow(/labels must be shaped \(2,\)/);
      const floats = write('f.npy', npyBuffer('<f4', [2], new Float32Array(2)));
      await expect(openDataset({ path, labelsPath: floats }, gray)).rejects.toThrow(/labels must be integers/);
      await expect(openDataset({ path, labelsPath: join(tmp.dir, 'missing.npy') }, gray)).rejects.toThrow(/cannot read NPY labels file .*no such file/);
    });
  });
});
