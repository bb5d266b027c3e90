import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import type { Preprocessing } from '../common/preprocessing';
import { InputError } from './errors';
import { batchDims, imageLength, writePreprocessed } from './pixels';
import type { RawImage } from './types';

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
const JPEG_MAGIC = Buffer.from([0xff, 0xd8]);
/** Guards against decompression bombs: far above any ViT input, far below the machine's memory. */
const MAX_MEGAPIXELS = 64;

export function isImageFileName(name: string): boolean {
  return /\.(png|jpe?g)$/i.test(name);
}

/**
 * Decodes a PNG or JPEG (told apart by content, not name) into 8-bit pixels, HWC: 1 channel for
 * gray PNGs, 3 for everything else. Transparent images are refused: what to blend them onto is
 * the user's call.
 */
export function decodeImage(buf: Buffer, source: string): RawImage {
  if (buf.subarray(0, 4).equals(PNG_MAGIC)) return decodePng(buf, source);
  if (buf.subarray(0, 2).equals(JPEG_MAGIC)) return decodeJpegImage(buf, source);
  throw new InputError(`${source}: not a PNG or JPEG image`);
}

/** One encoded image → a [1, ...] tensor in the model's layout, e.g. for an HTTP image upload. */
export function imageToTensor(buf: Buffer, pre: Preprocessing, source = 'image'): { data: Float32Array; dims: number[] } {
  const data = new Float32Array(imageLength(pre));
  writePreprocessed(decodeImage(buf, source), pre, data, 0);
  return { data, dims: batchDims(1, pre) };
}

function decodePng(buf: Buffer, source: string): RawImage {
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(buf);
  } catch (err) {
    throw new InputError(`${source}: corrupt PNG (${(err as Error).message})`);
  }
  const { width, height, data } = png;
  checkMegapixels(width, height, source);
  const pixels = width * height;
  if (png.alpha) {
    for (let p = 0; p < pixels; p++) {
      if (data[4 * p + 3] !== 255) throw new InputError(`${source}: image has transparent pixels; flatten it onto a background first`);
    }
  }
  // pngjs always expands to RGBA; keep one channel for gray images so they need no gray check later.
  const channels = png.color ? 3 : 1;
  const out = new Uint8Array(pixels * channels);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < channels; c++) out[p * channels + c] = data[4 * p + c];
  }
  return { pixels: out, height, width, channels, layout: 'HWC', scale: 1 / 255, source };
}

function decodeJpegImage(buf: Buffer, source: string): RawImage {
  try {
    const img = decodeJpeg(buf, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: MAX_MEGAPIXELS });
    return { pixels: img.data, height: img.height, width: img.width, channels: 3, layout: 'HWC', scale: 1 / 255, source };
  } catch (err) {
    throw new InputError(`${source}: corrupt JPEG (${(err as Error).message})`);
  }
}

function checkMegapixels(width: number, height: number, source: string): void {
  if (width * height > MAX_MEGAPIXELS * 1e6) throw new InputError(`${source}: image is larger than ${MAX_MEGAPIXELS} megapixels`);
}
