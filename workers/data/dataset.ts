import type { Preprocessing } from '../common/preprocessing';
import { InputError } from './errors';
import { batchDims, imageLength, writePreprocessed } from './pixels';
import type { BatchOptions, ImageBatch, ImageDataset, RawImageSource } from './types';

/** Turns a format reader's raw images into batches of preprocessed tensors. */
export class PreprocessedDataset implements ImageDataset {
  constructor(
    private readonly source: RawImageSource,
    private readonly pre: Preprocessing,
  ) {}

  get size(): number {
    return this.source.count;
  }

  get hasLabels(): boolean {
    return this.source.labels !== undefined;
  }

  get classNames(): readonly string[] | undefined {
    return this.source.classNames;
  }

  get classCount(): number | undefined {
    const { labels, classNames } = this.source;
    if (!labels) return undefined;
    if (classNames) return classNames.length;
    let largest = -1;
    for (const label of labels) largest = Math.max(largest, label);
    return largest + 1;
  }

  get description(): string {
    return this.source.description;
  }

  async *batches(options: BatchOptions): AsyncIterableIterator<ImageBatch> {
    const { start, end } = resolveRange(this.size, options);
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new InputError(`batch size must be a positive integer, got ${options.batchSize}`);
    }
    const stride = imageLength(this.pre);
    for (let first = start; first < end; first += options.batchSize) {
      const n = Math.min(options.batchSize, end - first);
      const data = new Float32Array(n * stride);
      for (let i = 0; i < n; i++) {
        writePreprocessed(await this.source.image(first + i), this.pre, data, i * stride);
      }
      const labels = this.source.labels?.subarray(first, first + n);
      yield { data, dims: batchDims(n, this.pre), labels, offset: first };
    }
  }
}

/** The [start, end) image range that `offset` and `limit` select; both are clamped to the dataset. */
export function resolveRange(size: number, options: Pick<BatchOptions, 'offset' | 'limit'>): { start: number; end: number } {
  const offset = options.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) throw new InputError(`offset must be a non-negative integer, got ${offset}`);
  if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit < 0)) {
    throw new InputError(`limit must be a non-negative integer, got ${options.limit}`);
  }
  const start = Math.min(offset, size);
  const end = options.limit === undefined ? size : Math.min(size, start + options.limit);
  return { start, end };
}
