import { constants, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { InputError } from './errors';

const gunzipAsync = promisify(gunzip);

/** Largest file the readers load (a Buffer's own ceiling is 4 GiB). */
export const DEFAULT_MAX_FILE_BYTES = 2 * 1024 ** 3;

/** What a path names: only regular files and directories are data; anything else is `special`. */
export type PathKind = 'file' | 'directory' | 'special' | 'missing';

const kindOf = (s: Stats): PathKind => (s.isDirectory() ? 'directory' : s.isFile() ? 'file' : 'special');

/** "a character device": what a special file is, for messages. */
export function describeSpecialFile(s: Stats): string {
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Reads a regular file of at most `maxBytes`, failing with a one-line message that names it
 * otherwise. The file is opened without blocking (a FIFO would wait for a writer) and checked on
 * the open handle, so a device, FIFO or socket is never read, and exactly the size the file had
 * when opened is read: a file that grows, or a /proc file that reports no size, cannot stream
 * without end.
 */
export async function readInputFile(path: string, what: string, maxBytes = DEFAULT_MAX_FILE_BYTES): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new InputError(`cannot read ${what} ${path}: ${describeFsError(err)}`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new InputError(`cannot read ${what} ${path}: it is ${describeSpecialFile(info)}, not a regular file`);
    if (info.size > maxBytes) throw new InputError(`cannot read ${what} ${path}: it has ${info.size} bytes, over the limit of ${maxBytes}`);
    const bytes = Buffer.alloc(info.size);
    let filled = 0;
    while (filled < bytes.length) {
      const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return filled === bytes.length ? bytes : bytes.subarray(0, filled);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`cannot read ${what} ${path}: ${describeFsError(err)}`);
  } finally {
    await handle.close();
  }
}

/**
 * Reads a file and gunzips it when it starts with the gzip magic bytes, whatever its name. The
 * inflated size is bounded by `maxBytes` too: a small gzip file can hold gigabytes.
 */
export async function readMaybeGzipped(path: string, what: string, maxBytes = DEFAULT_MAX_FILE_BYTES): Promise<Buffer> {
  const raw = await readInputFile(path, what, maxBytes);
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return await gunzipAsync(raw, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new InputError(`${path}: gzip data inflates past the limit of ${maxBytes} bytes`);
    throw new InputError(`${path}: corrupt gzip data (${(err as Error).message})`);
  }
}

export async function pathKind(path: string): Promise<PathKind> {
  try {
    return kindOf(await stat(path));
  } catch {
    return 'missing';
  }
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return (err as Error).message;
}
