import type { Stats } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describeSpecialFile, InputError, readInputFile } from '../../workers/data';
import { badInput, GatewayError } from '../errors';

/**
 * Files that admins name by path (a model's `localPath`, a dataset's `path`). Only regular files
 * and directories inside the configured roots are accepted, and a file is read only up to the
 * size limit: a path can name a device, a FIFO or a /proc file, which would read without end.
 */
export class LocalFiles {
  private realRoots: Promise<string[]> | undefined;

  constructor(
    /** Directories whose contents may be named; symbolic links are followed before the check. */
    readonly roots: readonly string[],
    /** Largest file read, in bytes. */
    readonly maxBytes: number,
  ) {}

  /**
   * The real location of `raw` (relative paths resolve against the gateway's working directory),
   * refused unless it lies inside a root and is a regular file (or, with `directories`, a directory).
   */
  async resolve(raw: string, what: string, options: { directories: boolean }): Promise<{ path: string; stats: Stats }> {
    if (raw.trim() === '' || raw.includes('\0')) throw badInput(`${what} must be a file path, got ${JSON.stringify(raw)}`);
    let real: string;
    let stats: Stats;
    try {
      real = await fsp.realpath(path.resolve(raw));
      stats = await fsp.stat(real);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      throw badInput(`${what} ${raw} ${code === 'ENOENT' ? 'not found' : 'cannot be read'} (${code})`);
    }
    const roots = await this.resolvedRoots();
    if (!roots.some((root) => real === root || real.startsWith(root.endsWith(path.sep) ? root : root + path.sep))) {
      throw badInput(`${what} ${raw} is outside the directories the gateway reads from (${this.roots.join(', ')}); move it there or add its directory to LOCAL_PATH_ROOTS`);
    }
    if (stats.isDirectory() ? !options.directories : !stats.isFile()) {
      const kind = stats.isDirectory() ? 'a directory' : describeSpecialFile(stats);
      throw badInput(`${what} ${raw} is ${kind}; give a regular file${options.directories ? ' or a directory' : ''}`);
    }
    return { path: real, stats };
  }

  /** The bytes of a regular file inside the roots, refused past `maxBytes` (default: the size limit) before reading. */
  async read(raw: string, what: string, maxBytes = this.maxBytes): Promise<Buffer> {
    const { path: real, stats } = await this.resolve(raw, what, { directories: false });
    if (stats.size > maxBytes) throw new GatewayError('PAYLOAD_TOO_LARGE', `${what} ${raw} is ${stats.size} bytes, over the limit of ${maxBytes}`);
    try {
      return await readInputFile(real, what, maxBytes);
    } catch (error) {
      if (error instanceof InputError) throw badInput(error.message);
      throw error;
    }
  }

  /**
   * A small companion file the caller did not name (a model card beside a model): undefined when
   * nothing is there; anything that is there is held to the same rules as `read`, so a FIFO or a
   * device under the expected name is refused instead of read without end.
   */
  async readIfPresent(raw: string, what: string, maxBytes: number): Promise<Buffer | undefined> {
    try {
      await fsp.lstat(path.resolve(raw));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    }
    return this.read(raw, what, Math.min(maxBytes, this.maxBytes));
  }

  private resolvedRoots(): Promise<string[]> {
    // Roots that do not exist (yet) hold nothing to read; they are looked up again next time.
    this.realRoots ??= Promise.all(this.roots.map((root) => fsp.realpath(root).catch(() => undefined))).then((found) => {
      const real = found.filter((r): r is string => r !== undefined);
      if (real.length < this.roots.length) this.realRoots = undefined;
      return real;
    });
    return this.realRoots;
  }
}
