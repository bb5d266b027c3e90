import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { InputError } from './errors';

const gunzipAsync = promisify(gunzip);

/** Reads a file, failing with a one-line message that names it when it is missing or unreadable. */
export async function readInputFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new InputError(`cannot read ${what} ${path}: ${describeFsError(err)}`);
  }
}

/** Reads a file and gunzips it when it starts with the gzip magic bytes, whatever its name. */
export async function readMaybeGzipped(path: string, what: string): Promise<Buffer> {
  const raw = await readInputFile(path, what);
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return await gunzipAsync(raw);
  } catch (err) {
    throw new InputError(`${path}: corrupt gzip data (${(err as Error).message})`);
  }
}

export async function pathKind(path: string): Promise<'file' | 'directory' | 'missing'> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? 'directory' : 'file';
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
