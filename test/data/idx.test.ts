import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError, openDataset, type ImageBatch } from '../../workers/data';
import { parseIdx } from '../../workers/data/idx';
import { FMNIST_PRE, SAMPLE_DIR, idxBuffer, pattern, preprocessing, tempDir } from './fixtures';

async function collect(it: AsyncIterable<ImageBatch>): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('IDX reader', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  function writeSplit(prefix: string, images: Buffer, labels: Buffer | undefined, gzip: boolean): void {
    const ext = gzip ? '.gz' : '';
    writeFileSync(join(tmp.dir, `${prefix}-images-idx3-ubyte${ext}`), gzip ? gzipSync(images) : images);
    if (labels) writeFileSync(join(tmp.dir, `${prefix}-labels-idx1-ubyte${ext}`), gzip ? gzipSync(labels) : labels);
  }

  it('reads the committed sample: 1000 test and 1024 train images with labels', async () => {
    const test = await openDataset({ path: SAMPLE_DIR, split: 'test' }, FMNIST_PRE);
    const train = await openDataset({ path: SAMPLE_DIR, split: 'train' }, FMNIST_PRE);
    expect([test.size, train.size]).toEqual([1000, 1024]);
    expect([test.hasLabels, test.classCount]).toEqual([true, 10]);
    const [first] = await collect(test.batches({ batchSize: 4, limit: 4 }));
    expect(first.dims).toEqual([4, 1, 28, 28]);
    // Fashion-MNIST's first test image is an ankle boot (label 9) on a black background.
    expect(Array.from(first.labels ?? [])).toEqual([9, 2, 1, 1]);
    expect(first.data[0]).toBeCloseTo(-0.286 / 0.353, 5);
  });

  it('normalizes plain and gzipped files the same way, NCHW and NHWC', async () => {
    const pixels = pattern(3 * 2 * 2);
    writeSplit('t10k', idxBuffer([3, 2, 2], pixels), idxBuffer([3], Uint8Array.from([0, 1, 2])), false);
    writeSplit('train', idxBuffer([3, 2, 2], pixels), idxBuffer([3], Uint8Array.from([0, 1, 2])), true);
    const pre = preprocessing({ height: 2, width: 2, mean: [0.5], std: [0.25] });
    const plain = await collect((await openDataset({ path: tmp.dir, split: 'test' }, pre)).batches({ batchSize: 8 }));
    const gz = await collect((await openDataset({ path: tmp.dir, split: 'train' }, pre)).batches({ batchSize: 8 }));
    const expected = Array.from(pixels, (p) => (p / 255 - 0.5) / 0.25);
    expected.forEach((v, i) => expect(plain[0].data[i]).toBeCloseTo(v, 5));
    expect(gz[0].data).toEqual(plain[0].data);
    const rgbNhwc = preprocessing({ height: 2, width: 2, channels: 3, layout: 'NHWC', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
    const [nhwc] = await collect((await openDataset({ path: tmp.dir }, rgbNhwc)).batches({ batchSize: 1, limit: 1 }));
    expect(nhwc.dims).toEqual([1, 2, 2, 3]);
    // A gray image feeds all three channels of an RGB model.
    for (const v of nhwc.data.subarray(0, 3)) expect(v).toBeCloseTo(expected[0], 5);
  });

  it('takes subsets with offset and limit, in batches', async () => {
    const ds = await openDataset({ path: SAMPLE_DIR, split: 'train' }, FMNIST_PRE);
    const batches = await collect(ds.batches({ batchSize: 64, offset: 100, limit: 150 }));
    expect(batches.map((b) => b.dims[0])).toEqual([64, 64, 22]);
    expect(batches.map((b) => b.offset)).toEqual([100, 164, 228]);
    const whole = await collect(ds.batches({ batchSize: 1024 }));
    expect(batches[1].labels).toEqual(whole[0].labels?.subarray(164, 228));
    expect(await collect(ds.batches({ batchSize: 8, offset: 5000 }))).toEqual([]);
  });

  it('opens a single images file and finds its labels file', async () => {
    writeSplit('train', idxBuffer([2, 28, 28], pattern(2 * 784)), idxBuffer([2], Uint8Array.from([3, 4])), true);
    const ds = await openDataset({ path: join(tmp.dir, 'train-images-idx3-ubyte.gz') }, FMNIST_PRE);
    const [batch] = await collect(ds.batches({ batchSize: 2 }));
    expect(Array.from(batch.labels ?? [])).toEqual([3, 4]);
  });

  describe('bad input', () => {
    const pre = preprocessing({ height: 2, width: 2 });
    const open = (split: 'train' | 'test' = 'test') => openDataset({ path: tmp.dir, split }, pre);

    it('names a missing dataset or split', async () => {
      await expect(openDataset({ path: join(tmp.dir, 'nope') }, pre)).rejects.toThrow(/dataset not found: .*nope/);
      writeSplit('train', idxBuffer([1, 2, 2], pattern(4)), undefined, false);
      await expect(open('test')).rejects.toThrow(/no IDX test split .*t10k-images-idx3-ubyte/);
    });

    it('rejects a truncated file', async () => {
      writeSplit('t10k', idxBuffer([3, 2, 2], pattern(12)).subarray(0, 20), undefined, true);
      await expect(open()).rejects.toThrow(/truncated IDX file: header declares 3x2x2 = 12 bytes, file holds 4/);
    });

    it('rejects a bad magic number, an unknown type, extra bytes and a short header', async () => {
      const good = idxBuffer([1, 2, 2], pattern(4));
      const cases: [Buffer, RegExp][] = [
        [Buffer.concat([Buffer.from([1, 2]), good.subarray(2)]), /not an IDX file/],
        [Buffer.concat([good.subarray(0, 2), Buffer.from([0x0d]), good.subarray(3)]), /element type 0xd is not supported/],
        [Buffer.concat([good, Buffer.from([1, 2, 3])]), /3 bytes beyond the declared 1x2x2 data/],
        [good.subarray(0, 6), /truncated IDX header/],
      ];
      for (const [buf, message] of cases) {
        expect(() => parseIdx(buf, 'x.idx')).toThrow(message);
      }
    });

    it('rejects corrupt gzip data', async () => {
      const gz = gzipSync(idxBuffer([1, 2, 2], pattern(4)));
      gz[gz.length - 6] ^= 0xff;
      writeFileSync(join(tmp.dir, 't10k-images-idx3-ubyte.gz'), gz);
      await expect(open()).rejects.toThrow(/corrupt gzip data/);
    });

    it('rejects labels that do not match the images', async () => {
      writeSplit('t10k', idxBuffer([3, 2, 2], pattern(12)), idxBuffer([2], Uint8Array.from([1, 2])), false);
      await expect(open()).rejects.toThrow(/2 labels for 3 images/);
    });

    it('rejects images of another size than the model takes', async () => {
      writeSplit('t10k', idxBuffer([1, 3, 3], pattern(9)), undefined, false);
      await expect(open()).rejects.toThrow(/image is 3x3 \(WxH\) but the model expects 2x2/);
    });

    it('throws InputError, one line each', async () => {
      writeSplit('t10k', idxBuffer([3, 2, 2], pattern(12)).subarray(0, 20), undefined, false);
      const err = await open().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).not.toContain('\n');
    });
  });
});
