import { decode as decodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import type { Preprocessing } from '../common/preprocessing';
import { InputError } from './errors';
import { checkedImageHeader, type ImageHeader } from './image-header';
import { batchDims, checkImageSize, imageLength, writePreprocessed } from './pixels';
import type { RawImage } from './types';

/**
 * Pixels an image may declare before it is refused undecoded (4096 x 4096): far above any ViT
 * input, and small enough that one decode stays in the hundreds of megabytes.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096;

export function isImageFileName(name: string): boolean {
  return /\.(png|jpe?g)$/i.test(name);
}

/**
 * Decodes a PNG or JPEG (told apart by content, not name) into 8-bit pixels, HWC: 1 channel for
 * gray PNGs, 3 for everything else. Transparent images are refused: what to blend them onto is
 * the user's call. The declared size is checked against `maxPixels` before anything is decoded.
 */
export function decodeImage(buf: Buffer, source: string, maxPixels = DEFAULT_MAX_IMAGE_PIXELS): RawImage {
  return decodeChecked(buf, checkedImageHeader(buf, source, maxPixels), source, maxPixels);
}

/**
 * One encoded image → a [1, ...] tensor in the model's layout, e.g. for an HTTP image upload.
 * An image of the wrong size is refused from its header, before its pixels cost anything.
 */
export function imageToTensor(buf: Buffer, pre: Preprocessing, source = 'image', maxPixels = DEFAULT_MAX_IMAGE_PIXELS): { data: Float32Array; dims: number[] } {
  const header = checkedImageHeader(buf, source, maxPixels);
  checkImageSize(header, pre, source);
  const data = new Float32Array(imageLength(pre));
  writePreprocessed(decodeChecked(buf, header, source, maxPixels), pre, data, 0);
  return { data, dims: batchDims(1, pre) };
}

function decodeChecked(buf: Buffer, header: ImageHeader, source: string, maxPixels: number): RawImage {
  return header.format === 'PNG' ? decodePng(buf, source) : decodeJpegImage(buf, source, maxPixels);
}

function decodePng(buf: Buffer, source: string): RawImage {
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(buf);
  } catch (err) {
    throw new InputError(`${source}: corrupt PNG (${(err as Error).message})`);
  }
  const { width, height, data } = png;
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

function decodeJpegImage(buf: Buffer, source: string, maxPixels: number): RawImage {
  try {
    // jpeg-js keeps about 20 bytes per pixel while it decodes; its own default budget is 512 MB.
    const maxMemoryUsageInMB = Math.max(64, Math.ceil((maxPixels * 24) / 2 ** 20));
    const img = decodeJpeg(buf, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: maxPixels / 1e6, maxMemoryUsageInMB });
    return { pixels: img.data, height: img.height, width: img.width, channels: 3, layout: 'HWC', scale: 1 / 255, source };
  } catch (err) {
    throw new InputError(`${source}: corrupt JPEG (${(err as Error).message})`);
  }
}
