import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  ArtifactNotFoundError,
  ArtifactTooLargeError,
  isSha256,
  type ArtifactStore,
  type StoredArtifact,
} from './artifact-store';

/**
 * Artifacts as files named by their hash (`<root>/ab/abcdef…`). Writes go to a temporary file
 * in the same directory tree and are renamed into place, so a reader never sees half a file.
 */
export class FileArtifactStore implements ArtifactStore {
  constructor(readonly root: string) {}

  async put(source: Readable | Buffer, options: { maxBytes?: number } = {}): Promise<StoredArtifact> {
    const tmpDir = path.join(this.root, 'tmp');
    await fsp.mkdir(tmpDir, { recursive: true });
    const tmpFile = path.join(tmpDir, randomUUID());
    const hash = createHash('sha256');
    let size = 0;
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > maxBytes) return callback(new ArtifactTooLargeError(maxBytes));
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    try {
      const input = Buffer.isBuffer(source) ? Readable.from([source]) : source;
      await pipeline(input, meter, fs.createWriteStream(tmpFile));
      const sha256 = hash.digest('hex');
      const target = this.pathOf(sha256);
      await fsp.mkdir(path.dirname(target), { recursive: true });
      await fsp.rename(tmpFile, target);
      return { sha256, size };
    } catch (error) {
      await fsp.rm(tmpFile, { force: true });
      throw error;
    }
  }

  async has(sha256: string): Promise<boolean> {
    if (!isSha256(sha256)) return false;
    try {
      await fsp.access(this.pathOf(sha256));
      return true;
    } catch {
      return false;
    }
  }

  async read(sha256: string): Promise<Buffer> {
    return fsp.readFile(await this.localPath(sha256));
  }

  async localPath(sha256: string): Promise<string> {
    if (!(await this.has(sha256))) throw new ArtifactNotFoundError(sha256);
    return this.pathOf(sha256);
  }

  async delete(sha256: string): Promise<void> {
    if (isSha256(sha256)) await fsp.rm(this.pathOf(sha256), { force: true });
  }

  private pathOf(sha256: string): string {
    return path.join(this.root, sha256.slice(0, 2), sha256);
  }
}
