import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ObjectStore } from '@nats-io/obj';
import { ArtifactNotFoundError, ArtifactTooLargeError, isSha256, type ArtifactStore, type StoredArtifact } from './artifact-store';
import { FileArtifactStore } from './file-artifact-store';

async function collect(source: Readable | Buffer, maxBytes: number): Promise<Buffer> {
  if (Buffer.isBuffer(source)) {
    if (source.length > maxBytes) throw new ArtifactTooLargeError(maxBytes);
    return source;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > maxBytes) {
      source.destroy();
      throw new ArtifactTooLargeError(maxBytes);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Artifacts in a NATS JetStream Object Store bucket, named by their SHA-256, so every gateway
 * and worker that reaches the server sees the same blobs. Artifacts are model files and
 * calibration sets (megabytes), so `put` holds one in memory while hashing it. `localPath`
 * materializes a copy in a local content-addressed cache.
 */
export class NatsObjectArtifactStore implements ArtifactStore {
  private readonly cache: FileArtifactStore;

  constructor(
    private readonly bucket: ObjectStore,
    cacheDir: string,
  ) {
    this.cache = new FileArtifactStore(cacheDir);
  }

  async put(source: Readable | Buffer, options: { maxBytes?: number } = {}): Promise<StoredArtifact> {
    const bytes = await collect(source, options.maxBytes ?? Number.POSITIVE_INFINITY);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (!(await this.has(sha256))) {
      try {
        // Revision 0: only if no one stored it meanwhile. Replacing an object purges its old
        // chunks, which would strand a reader in the middle of fetching them.
        await this.bucket.putBlob({ name: sha256 }, bytes, { previousRevision: 0 });
      } catch (error) {
        if (!(await this.has(sha256))) throw error;
      }
    }
    return { sha256, size: bytes.length };
  }

  async has(sha256: string): Promise<boolean> {
    if (!isSha256(sha256)) return false;
    const info = await this.bucket.info(sha256);
    return info !== null && !info.deleted;
  }

  async read(sha256: string): Promise<Buffer> {
    if (await this.cache.has(sha256)) return this.cache.read(sha256);
    const blob = isSha256(sha256) ? await this.bucket.getBlob(sha256) : null;
    if (blob === null) throw new ArtifactNotFoundError(sha256);
    return Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  }

  async localPath(sha256: string): Promise<string> {
    if (!(await this.cache.has(sha256))) await this.cache.put(await this.read(sha256));
    return this.cache.localPath(sha256);
  }

  async delete(sha256: string): Promise<void> {
    await this.cache.delete(sha256);
    if (await this.has(sha256)) await this.bucket.delete(sha256);
  }
}
