import type { Preprocessing } from '../common/preprocessing';
import { InputError } from './errors';
import type { RawImage } from './types';

/**
 * Lossy JPEG stores gray pictures saved as RGB with small chroma noise; a spread this small
 * between R, G and B still means "gray" and makes the RGB→gray conversion unambiguous.
 */
const GRAY_TOLERANCE = 2 / 255;

/** Floats one preprocessed image occupies. */
export function imageLength(pre: Preprocessing): number {
  return pre.channels * pre.height * pre.width;
}

/** Tensor dims of `n` images in the preprocessing's layout. */
export function batchDims(n: number, pre: Preprocessing): number[] {
  return pre.layout === 'NCHW' ? [n, pre.channels, pre.height, pre.width] : [n, pre.height, pre.width, pre.channels];
}

/** Throws when an image of this size cannot feed the model; the message names the image. */
export function checkImageSize(size: { height: number; width: number }, pre: Preprocessing, source: string): void {
  if (size.height !== pre.height || size.width !== pre.width) {
    throw new InputError(`${source}: image is ${size.width}x${size.height} (WxH) but the model expects ${pre.width}x${pre.height}; resize the images first`);
  }
}

/** Throws when an image of this shape cannot feed the model; the message names the image. */
export function checkImageShape(
  shape: { height: number; width: number; channels: number },
  pre: Preprocessing,
  source: string,
): void {
  checkImageSize(shape, pre, source);
  if (shape.channels !== 1 && shape.channels !== 3) {
    throw new InputError(`${source}: image has ${shape.channels} channels; only 1 (gray) or 3 (RGB) are supported`);
  }
}

/**
 * Writes `raw` normalized ((p * scale - mean) / std) into `out` at `offset`, in the model's layout.
 * Gray images feed RGB models by repetition; RGB images feed gray models only when they are gray.
 */
export function writePreprocessed(raw: RawImage, pre: Preprocessing, out: Float32Array, offset: number): void {
  checkImageShape(raw, pre, raw.source);
  const pixels = raw.height * raw.width;
  // Strides of the source image: element (pixel p, channel c) lives at p * pixelStride + c * channelStride.
  const srcPixelStride = raw.layout === 'HWC' ? raw.channels : 1;
  const srcChannelStride = raw.layout === 'HWC' ? 1 : pixels;
  const dstPixelStride = pre.layout === 'NHWC' ? pre.channels : 1;
  const dstChannelStride = pre.layout === 'NHWC' ? 1 : pixels;
  const src = raw.pixels;
  if (raw.channels === 3 && pre.channels === 1) {
    writeRgbAsGray(raw, pre, out, offset);
    return;
  }
  for (let c = 0; c < pre.channels; c++) {
    // A gray source feeds every model channel from its single channel.
    const srcBase = (raw.channels === 1 ? 0 : c) * srcChannelStride;
    const dstBase = offset + c * dstChannelStride;
    const a = raw.scale / pre.std[c];
    const b = -pre.mean[c] / pre.std[c];
    for (let p = 0; p < pixels; p++) {
      out[dstBase + p * dstPixelStride] = src[srcBase + p * srcPixelStride] * a + b;
    }
  }
}

function writeRgbAsGray(raw: RawImage, pre: Preprocessing, out: Float32Array, offset: number): void {
  const pixels = raw.height * raw.width;
  const pixelStride = raw.layout === 'HWC' ? 3 : 1;
  const channelStride = raw.layout === 'HWC' ? 1 : pixels;
  const src = raw.pixels;
  const a = raw.scale / pre.std[0];
  const b = -pre.mean[0] / pre.std[0];
  const tolerance = GRAY_TOLERANCE / raw.scale;
  for (let p = 0; p < pixels; p++) {
    const i = p * pixelStride;
    const r = src[i];
    const g = src[i + channelStride];
    const bl = src[i + 2 * channelStride];
    if (Math.max(r, g, bl) - Math.min(r, g, bl) > tolerance) {
      throw new InputError(
        `${raw.source}: image is in color (RGB) but the model expects 1 gray channel; convert the images to grayscale or use --channels 3 with a model that takes RGB`,
      );
    }
    out[offset + p] = ((r + g + bl) / 3) * a + b;
  }
}
