import { basename, dirname, join } from 'node:path';
import { InputError } from './errors';
import { pathKind, readMaybeGzipped } from './files';
import type { DatasetSplit, RawImage, RawImageSource } from './types';

/**
 * IDX, the format of MNIST and Fashion-MNIST: a 4-byte magic (0, 0, type, ndim), ndim big-endian
 * uint32 sizes, then the data. Only unsigned bytes (type 0x08) occur in image datasets.
 */
const UBYTE = 0x08;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses an IDX buffer; every structural problem becomes a one-line error naming `path`. */
export function parseIdx(buf: Buffer, path: string): IdxArray {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new InputError(`${path}: not an IDX file (bad magic number)`);
  }
  if (buf[2] !== UBYTE) {
    throw new InputError(`${path}: IDX element type 0x${buf[2].toString(16)} is not supported (only unsigned bytes, 0x08)`);
  }
  const ndim = buf[3];
  if (ndim < 1 || buf.length < 4 + 4 * ndim) throw new InputError(`${path}: truncated IDX header`);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const body = buf.length - 4 - 4 * ndim;
  if (body < expected) {
    throw new InputError(`${path}: truncated IDX file: header declares ${dims.join('x')} = ${expected} bytes, file holds ${body}`);
  }
  if (body > expected) {
    throw new InputError(`${path}: corrupt IDX file: ${body - expected} bytes beyond the declared ${dims.join('x')} data`);
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + 4 + 4 * ndim, expected) };
}

/** File name prefixes of each split: the MNIST family names the test split `t10k`. */
const SPLIT_PREFIXES: Record<DatasetSplit, string[]> = { train: ['train'], test: ['t10k', 'test'] };

/** Finds `<prefix>-images-idx3-ubyte[.gz]` and the matching labels file of a split in `dir`. */
export async function findIdxSplit(dir: string, split: DatasetSplit): Promise<{ images: string; labels?: string }> {
  for (const prefix of SPLIT_PREFIXES[split]) {
    const images = await firstExisting([`${prefix}-images-idx3-ubyte.gz`, `${prefix}-images-idx3-ubyte`].map((f) => join(dir, f)));
    if (images) {
      const labels = await firstExisting([`${prefix}-labels-idx1-ubyte.gz`, `${prefix}-labels-idx1-ubyte`].map((f) => join(dir, f)));
      return { images, labels };
    }
  }
  throw new InputError(
    `${dir}: no IDX ${split} split (expected ${SPLIT_PREFIXES[split][0]}-images-idx3-ubyte or the same name with .gz)`,
  );
}

/** Whether a directory holds IDX image files (used to detect the format). */
export async function hasIdxFiles(dir: string): Promise<boolean> {
  const names = Object.values(SPLIT_PREFIXES).flat().flatMap((p) => [`${p}-images-idx3-ubyte.gz`, `${p}-images-idx3-ubyte`]);
  return (await firstExisting(names.map((n) => join(dir, n)))) !== undefined;
}

/** The labels file that belongs to a single IDX images file: `-images-idx3-` becomes `-labels-idx1-`. */
export function siblingIdxLabels(imagesPath: string): string | undefined {
  const name = basename(imagesPath);
  if (!name.includes('-images-idx3-')) return undefined;
  return join(dirname(imagesPath), name.replace('-images-idx3-', '-labels-idx1-'));
}

/** Opens IDX images (N x H x W gray, or N x H x W x C) and optional labels (N). */
export async function openIdx(imagesPath: string, labelsPath: string | undefined, description: string, maxFileBytes?: number): Promise<RawImageSource> {
  const images = parseIdx(await readMaybeGzipped(imagesPath, 'IDX images file', maxFileBytes), imagesPath);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new InputError(`${imagesPath}: IDX images must have 3 (N,H,W) or 4 (N,H,W,C) dimensions, got ${images.dims.length}`);
  }
  const [count, height, width] = images.dims;
  const channels = images.dims[3] ?? 1;
  let labels: Int32Array | undefined;
  if (labelsPath && (await pathKind(labelsPath)) === 'file') {
    const raw = parseIdx(await readMaybeGzipped(labelsPath, 'IDX labels file', maxFileBytes), labelsPath);
    if (raw.dims.length !== 1) throw new InputError(`${labelsPath}: IDX labels must have 1 dimension, got ${raw.dims.length}`);
    if (raw.dims[0] !== count) {
      throw new InputError(`${labelsPath}: ${raw.dims[0]} labels for ${count} images in ${imagesPath}`);
    }
    labels = Int32Array.from(raw.data);
  }
  const stride = height * width * channels;
  return {
    count,
    labels,
    description: `${description} (${count} images ${width}x${height}x${channels})`,
    image(index: number): RawImage {
      return {
        pixels: images.data.subarray(index * stride, (index + 1) * stride),
        height,
        width,
        channels,
        layout: 'HWC',
        scale: 1 / 255,
        source: `${imagesPath}[${index}]`,
      };
    },
  };
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const p of paths) if ((await pathKind(p)) === 'file') return p;
  return undefined;
}
