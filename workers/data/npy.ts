import { existsSync } from 'node:fs';
import type { Preprocessing } from '../common/preprocessing';
import { InputError } from './errors';
import { readInputFile } from './files';
import type { PixelLayout, RawImage, RawImageSource } from './types';

/** NumPy's `.npy` format: magic `\x93NUMPY`, version, header length, a Python-dict header, the data. */
const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

type NpyData = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array | BigInt64Array;

export interface NpyArray {
  /** NumPy dtype string, e.g. `|u1`, `<f4`. */
  dtype: string;
  shape: number[];
  data: NpyData;
}

const DTYPES: Record<string, { bytes: number; view: (b: ArrayBuffer, off: number, n: number) => NpyData }> = {
  u1: { bytes: 1, view: (b, o, n) => new Uint8Array(b, o, n) },
  i1: { bytes: 1, view: (b, o, n) => new Int8Array(b, o, n) },
  i2: { bytes: 2, view: (b, o, n) => new Int16Array(b, o, n) },
  u2: { bytes: 2, view: (b, o, n) => new Uint16Array(b, o, n) },
  i4: { bytes: 4, view: (b, o, n) => new Int32Array(b, o, n) },
  u4: { bytes: 4, view: (b, o, n) => new Uint32Array(b, o, n) },
  i8: { bytes: 8, view: (b, o, n) => new BigInt64Array(b, o, n) },
  f4: { bytes: 4, view: (b, o, n) => new Float32Array(b, o, n) },
  f8: { bytes: 8, view: (b, o, n) => new Float64Array(b, o, n) },
};

/** Parses a little-endian, C-ordered `.npy` buffer. */
export function parseNpy(buf: Buffer, path: string): NpyArray {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new InputError(`${path}: not an NPY file (bad magic)`);
  const major = buf[6];
  if (major < 1 || major > 3) throw new InputError(`${path}: unsupported NPY version ${major}`);
  const headerLenBytes = major === 1 ? 2 : 4;
  if (buf.length < 8 + headerLenBytes) throw new InputError(`${path}: truncated NPY header`);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const dataStart = 8 + headerLenBytes + headerLen;
  if (buf.length < dataStart) throw new InputError(`${path}: truncated NPY header`);
  const header = buf.toString('latin1', 8 + headerLenBytes, dataStart);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new InputError(`${path}: corrupt NPY header`);
  }
  if (fortran === 'True') throw new InputError(`${path}: Fortran-ordered NPY arrays are not supported; save with np.ascontiguousarray`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new InputError(`${path}: corrupt NPY shape (${shapeText})`);
  const order = descr[0];
  const kind = DTYPES[descr.slice(1)];
  if (!kind || (order === '>' && kind.bytes > 1)) {
    throw new InputError(`${path}: NPY dtype ${descr} is not supported (use uint8 or little-endian float32/int labels)`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const body = buf.length - dataStart;
  if (body < count * kind.bytes) {
    throw new InputError(`${path}: truncated NPY file: shape (${shape.join(', ')}) needs ${count * kind.bytes} data bytes, file holds ${body}`);
  }
  if (body > count * kind.bytes) {
    throw new InputError(`${path}: corrupt NPY file: ${body - count * kind.bytes} bytes beyond the declared data`);
  }
  // Copy so the typed array starts on an aligned offset, whatever the header length.
  const aligned = new Uint8Array(buf.subarray(dataStart)).buffer;
  return { dtype: descr, shape, data: kind.view(aligned, 0, count) };
}

/** The labels file used when none is given: `images.npy` → `images.labels.npy`. */
export function defaultNpyLabelsPath(imagesPath: string): string {
  return imagesPath.replace(/\.npy$/i, '') + '.labels.npy';
}

/**
 * Opens an NPY image array: uint8 (pixels 0..255) or float32 (pixels already scaled to 0..1),
 * shaped [N,H,W], [N,H,W,C] or [N,C,H,W]. A 4-D array's layout is told apart by which pair of
 * dimensions equals the preprocessing's height and width.
 */
export async function openNpy(imagesPath: string, labelsPath: string | undefined, pre: Preprocessing, maxFileBytes?: number): Promise<RawImageSource> {
  const images = parseNpy(await readInputFile(imagesPath, 'NPY images file', maxFileBytes), imagesPath);
  const isUint8 = images.data instanceof Uint8Array;
  if (!isUint8 && !(images.data instanceof Float32Array)) {
    throw new InputError(`${imagesPath}: NPY images must be uint8 or float32, got ${images.dtype}`);
  }
  const { count, height, width, channels, layout } = npyImageShape(images.shape, pre, imagesPath);
  const labels = await readNpyLabels(labelsPath ?? defaultNpyLabelsPath(imagesPath), labelsPath !== undefined, count, maxFileBytes);
  const stride = height * width * channels;
  const pixels = images.data as Uint8Array | Float32Array;
  return {
    count,
    labels,
    description: `NPY ${imagesPath} (${count} images ${width}x${height}x${channels}, ${images.dtype}${labels ? ', labeled' : ''})`,
    image(index: number): RawImage {
      return {
        pixels: pixels.subarray(index * stride, (index + 1) * stride),
        height,
        width,
        channels,
        layout,
        scale: isUint8 ? 1 / 255 : 1,
        source: `${imagesPath}[${index}]`,
      };
    },
  };
}

function npyImageShape(
  shape: number[],
  pre: Preprocessing,
  path: string,
): { count: number; height: number; width: number; channels: number; layout: PixelLayout } {
  if (shape.length === 3) return { count: shape[0], height: shape[1], width: shape[2], channels: 1, layout: 'HWC' };
  if (shape.length !== 4) {
    throw new InputError(`${path}: NPY images must be shaped [N,H,W], [N,H,W,C] or [N,C,H,W], got (${shape.join(', ')})`);
  }
  const [n, a, b, c] = shape;
  if (a === pre.height && b === pre.width) return { count: n, height: a, width: b, channels: c, layout: 'HWC' };
  if (b === pre.height && c === pre.width) return { count: n, height: b, width: c, channels: a, layout: 'CHW' };
  throw new InputError(
    `${path}: NPY images shaped (${shape.join(', ')}) have no ${pre.height}x${pre.width} (HxW) plane the model expects; resize the images first`,
  );
}

async function readNpyLabels(path: string, required: boolean, count: number, maxFileBytes: number | undefined): Promise<Int32Array | undefined> {
  if (!required && !existsSync(path)) return undefined;
  const arr = parseNpy(await readInputFile(path, 'NPY labels file', maxFileBytes), path);
  if (arr.shape.length !== 1 || arr.shape[0] !== count) {
    throw new InputError(`${path}: labels must be shaped (${count},) to match the images, got (${arr.shape.join(', ')})`);
  }
  if (arr.data instanceof Float32Array || arr.data instanceof Float64Array) {
    throw new InputError(`${path}: labels must be integers, got ${arr.dtype}`);
  }
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) labels[i] = Number(arr.data[i]);
  return labels;
}
