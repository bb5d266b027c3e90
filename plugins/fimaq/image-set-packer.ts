import type { ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import type { ImageSetArtifact } from '../../workers/common/jobs/messages';
import type { Preprocessing } from '../../workers/common/preprocessing';
import { InputError, openDataset, type DatasetFormat, type DatasetSplit, type ImageDataset } from '../../workers/data';
import { badInput, notFound, type LocalFiles } from '../../gateway/plugin-surface';
import type { ImageSetSource } from './job-record';

const FORMATS: readonly DatasetFormat[] = ['auto', 'idx', 'image-folder', 'npy'];
const SPLITS: readonly DatasetSplit[] = ['train', 'test'];
const BATCH = 64;

function npyHeader(descr: string, shape: readonly number[]): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  // Magic, version 1.0, header length; the header is padded so the data starts on 64 bytes.
  const unpadded = 10 + dict.length + 1;
  const padded = dict + ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  prefix.writeUInt16LE(padded.length, 8);
  return Buffer.concat([prefix, Buffer.from(padded, 'latin1')]);
}

/** The set as the user named it, e.g. `deploy/demo/data/fashion-mnist (test split)`. */
function describe(source: ImageSetSource): string {
  const where = source.path ?? `uploaded artifact ${source.artifactSha256}`;
  const details = [source.format && source.format !== 'auto' ? source.format : undefined, source.split ? `${source.split} split` : undefined].filter(Boolean);
  return details.length ? `${where} (${details.join(', ')})` : where;
}

/**
 * Turns a user's calibration or evaluation set into what a worker can read anywhere: a float32
 * NPY of pixel values in [0, 1] (NHWC) plus, when the set has labels, an int32 NPY of labels.
 * Opening the set here is also the validation: a missing, corrupt, too small or wrongly sized
 * set fails the mutation before any job exists.
 */
export class ImageSetPacker {
  constructor(
    private readonly artifacts: ArtifactStore,
    private readonly localFiles: LocalFiles,
  ) {}

  /**
   * Packs the first `wanted` images, or all of them when `wanted` is undefined. `labelsNeededFor`
   * says why the set must have labels, when it must.
   */
  async pack(source: ImageSetSource, pre: Preprocessing, wanted: number | undefined, what: string, labelsNeededFor?: string): Promise<ImageSetArtifact> {
    const dataset = await this.open(source, pre, what);
    const count = wanted ?? dataset.size;
    if (count === 0 || dataset.size < count) {
      throw badInput(`the ${what} set has ${dataset.size} images, fewer than the ${count} this job needs; use a larger set or lower the size`);
    }
    if (labelsNeededFor && !dataset.hasLabels) throw badInput(`the ${what} set has no labels; ${labelsNeededFor} needs labeled images`);
    const { height, width, channels, layout, mean, std } = pre;
    const pixelsPerImage = height * width * channels;
    const images = new Float32Array(count * pixelsPerImage);
    const labels = dataset.hasLabels ? new Int32Array(count) : undefined;
    try {
      for await (const batch of dataset.batches({ batchSize: BATCH, limit: count })) {
        const n = batch.dims[0];
        for (let i = 0; i < n; i++) {
          const image = (batch.offset + i) * pixelsPerImage;
          for (let y = 0; y < height; y++) {
            for (let x = 0; x < width; x++) {
              for (let c = 0; c < channels; c++) {
                const from = layout === 'NCHW' ? ((i * channels + c) * height + y) * width + x : ((i * height + y) * width + x) * channels + c;
                // Undo the normalization: workers apply the model's preprocessing themselves.
                images[image + (y * width + x) * channels + c] = batch.data[from] * std[c] + mean[c];
              }
            }
          }
        }
        labels?.set(batch.labels ?? new Int32Array(n), batch.offset);
      }
    } catch (error) {
      if (error instanceof InputError) throw badInput(`the ${what} set cannot be read: ${error.message}`);
      throw error;
    }
    const imagesArtifact = await this.artifacts.put(Buffer.concat([npyHeader('<f4', [count, height, width, channels]), Buffer.from(images.buffer)]));
    const labelsArtifact = labels ? await this.artifacts.put(Buffer.concat([npyHeader('<i4', [count]), Buffer.from(labels.buffer)])) : undefined;
    return { imagesSha256: imagesArtifact.sha256, ...(labelsArtifact ? { labelsSha256: labelsArtifact.sha256 } : {}), count, description: describe(source) };
  }

  private async open(source: ImageSetSource, pre: Preprocessing, what: string): Promise<ImageDataset> {
    if ((source.path === undefined) === (source.artifactSha256 === undefined)) {
      throw badInput(`give the ${what} set as exactly one of path (a dataset on the gateway's disk) or artifactSha256 (an uploaded file)`);
    }
    const format = (source.format ?? 'auto') as DatasetFormat;
    if (!FORMATS.includes(format)) throw badInput(`${what} format must be one of ${FORMATS.join(', ')}; got "${source.format}"`);
    const split = (source.split ?? 'train') as DatasetSplit;
    if (!SPLITS.includes(split)) throw badInput(`${what} split must be train or test; got "${source.split}"`);
    let path: string;
    if (source.path !== undefined) {
      path = (await this.localFiles.resolve(source.path, `${what} set path`, { directories: true })).path;
    } else {
      const sha256 = source.artifactSha256 as string;
      if (!(await this.artifacts.has(sha256))) throw notFound(`no artifact with sha256 ${sha256}; upload the ${what} file to POST /v1/artifacts first`);
      if (format === 'auto') throw badInput(`an uploaded ${what} file has no name to tell its format by; pass format: idx or npy`);
      path = await this.artifacts.localPath(sha256);
    }
    try {
      return await openDataset({ path, format, split, maxFileBytes: this.localFiles.maxBytes }, pre);
    } catch (error) {
      if (error instanceof InputError) throw badInput(`the ${what} set is unusable: ${error.message}`);
      throw error;
    }
  }
}
