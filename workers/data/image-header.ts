import { inflateSync } from 'node:zlib';
import { InputError } from './errors';

/** What an image file declares about itself, read from its header without decoding pixels. */
export interface ImageHeader {
  format: 'PNG' | 'JPEG';
  width: number;
  height: number;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7's passes: first column and row, column and row step. */
const ADAM7: ReadonlyArray<readonly [number, number, number, number]> = [
  [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
];

export function isPng(buf: Buffer): boolean {
  return buf.length >= 8 && buf.subarray(0, 8).equals(PNG_SIGNATURE);
}

export function isJpeg(buf: Buffer): boolean {
  return buf.length >= 2 && buf[0] === 0xff && buf[1] === 0xd8;
}

/** Width and height from a PNG's IHDR chunk, which the format puts first. */
function pngHeader(buf: Buffer, source: string): ImageHeader & { bitsPerPixel: number; interlaced: boolean } {
  if (buf.length < 29 || buf.toString('latin1', 12, 16) !== 'IHDR') throw new InputError(`${source}: corrupt PNG (no IHDR header)`);
  const channels = PNG_CHANNELS[buf[25]];
  if (channels === undefined) throw new InputError(`${source}: corrupt PNG (color type ${buf[25]})`);
  return { format: 'PNG', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), bitsPerPixel: channels * buf[24], interlaced: buf[28] === 1 };
}

/** Start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size. */
const isStartOfFrame = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

/** Width and height from a JPEG's start-of-frame segment, walking the segments before it. */
function jpegHeader(buf: Buffer, source: string): ImageHeader {
  let at = 2;
  while (at + 4 <= buf.length) {
    if (buf[at] !== 0xff) break;
    const marker = buf[at + 1];
    // Fill bytes, and markers that stand alone without a length.
    if (marker === 0xff) {
      at += 1;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      at += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) break;
    const length = buf.readUInt16BE(at + 2);
    if (isStartOfFrame(marker)) {
      if (at + 9 > buf.length) break;
      const height = buf.readUInt16BE(at + 5);
      const width = buf.readUInt16BE(at + 7);
      // A height of 0 defers to a DNL marker after the scan: the size is unknowable up front.
      if (width === 0 || height === 0) throw new InputError(`${source}: JPEG without a declared size (DNL) is not supported`);
      return { format: 'JPEG', width, height };
    }
    at += 2 + length;
  }
  throw new InputError(`${source}: corrupt JPEG (no frame header)`);
}

/**
 * Reads the declared size of a PNG or JPEG and refuses it above `maxPixels` before any pixel
 * is decoded: a file of a few dozen bytes may declare billions of pixels.
 */
export function checkedImageHeader(buf: Buffer, source: string, maxPixels: number): ImageHeader {
  const png = isPng(buf) ? pngHeader(buf, source) : undefined;
  const header = png ?? (isJpeg(buf) ? jpegHeader(buf, source) : undefined);
  if (!header) throw new InputError(`${source}: not a PNG or JPEG image`);
  if (header.width === 0 || header.height === 0) throw new InputError(`${source}: corrupt ${header.format} (size ${header.width}x${header.height})`);
  if (header.width * header.height > maxPixels) {
    throw new ImageTooLargeError(`${source}: the ${header.format} declares ${header.width}x${header.height} pixels, more than the limit of ${maxPixels}`);
  }
  if (png?.interlaced) checkInterlacedPngData(buf, png, source);
  return { format: header.format, width: header.width, height: header.height };
}

/** Past the pixel limit: the request is too large rather than malformed. */
export class ImageTooLargeError extends InputError {}

/**
 * pngjs bounds the inflated data by the declared size for plain PNGs but not for interlaced
 * ones, so a small interlaced file could inflate to gigabytes. Inflate those once with the
 * bound the Adam7 passes imply; past it the file is refused.
 */
function checkInterlacedPngData(buf: Buffer, header: { width: number; height: number; bitsPerPixel: number }, source: string): void {
  let bound = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const columns = Math.ceil((header.width - x0) / dx);
    const rows = Math.ceil((header.height - y0) / dy);
    if (columns > 0 && rows > 0) bound += rows * (1 + Math.ceil((columns * header.bitsPerPixel) / 8));
  }
  const data: Buffer[] = [];
  for (let at = 8; at + 8 <= buf.length; ) {
    const length = buf.readUInt32BE(at);
    if (buf.toString('latin1', at + 4, at + 8) === 'IDAT') data.push(buf.subarray(at + 8, Math.min(buf.length, at + 8 + length)));
    at += 12 + length;
  }
  try {
    inflateSync(Buffer.concat(data), { maxOutputLength: bound });
  } catch (error) {
    throw new InputError(`${source}: corrupt PNG (its image data ${(error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'inflates past the declared size' : 'does not inflate'})`);
  }
}
