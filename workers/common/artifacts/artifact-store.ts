import type { Readable } from 'node:stream';

export interface StoredArtifact {
  sha256: string;
  size: number;
}

/**
 * Content-addressed blob storage for model files, calibration sets and results. The embedded
 * default keeps files under the data directory; the distributed one is NATS's Object Store.
 * Both key blobs by the SHA-256 of their bytes, so storing the same bytes twice is a no-op.
 */
export interface ArtifactStore {
  /**
   * Streams bytes in, hashing as they arrive. Rejects with `ArtifactTooLargeError` (and stores
   * nothing) once more than `maxBytes` have been seen.
   */
  put(source: Readable | Buffer, options?: { maxBytes?: number }): Promise<StoredArtifact>;
  has(sha256: string): Promise<boolean>;
  /** The artifact's bytes; rejects with `ArtifactNotFoundError` for an unknown hash. */
  read(sha256: string): Promise<Buffer>;
  /**
   * A local file path holding the artifact, for consumers that want a path (onnxruntime).
   * Stores without local files materialize one in a cache directory.
   */
  localPath(sha256: string): Promise<string>;
  delete(sha256: string): Promise<void>;
}

export class ArtifactTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`artifact is larger than the limit of ${maxBytes} bytes`);
  }
}

export class ArtifactNotFoundError extends Error {
  constructor(readonly sha256: string) {
    super(`no artifact with sha256 ${sha256}`);
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function isSha256(value: string): boolean {
  return SHA256_HEX.test(value);
}
