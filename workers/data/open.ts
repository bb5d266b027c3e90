import { basename } from 'node:path';
import { validatePreprocessing, type Preprocessing } from '../common/preprocessing';
import { PreprocessedDataset } from './dataset';
import { InputError } from './errors';
import { pathKind } from './files';
import { findIdxSplit, hasIdxFiles, openIdx, siblingIdxLabels } from './idx';
import { openImageFolder } from './image-folder';
import { openNpy } from './npy';
import { imageLength, writePreprocessed } from './pixels';
import type { DatasetFormat, DatasetSpec, ImageDataset, RawImageSource } from './types';

/**
 * Opens a dataset for a model with the given preprocessing. Fails early, with a one-line
 * `InputError`, when the path is missing, the files are corrupt or the first image does not fit
 * the preprocessing (size, channels).
 */
export async function openDataset(spec: DatasetSpec, pre: Preprocessing): Promise<ImageDataset> {
  try {
    validatePreprocessing(pre);
  } catch (err) {
    throw new InputError((err as Error).message);
  }
  const source = await openSource(spec, pre);
  if (source.count > 0) writePreprocessed(await source.image(0), pre, new Float32Array(imageLength(pre)), 0);
  return new PreprocessedDataset(source, pre);
}

async function openSource(spec: DatasetSpec, pre: Preprocessing): Promise<RawImageSource> {
  const kind = await pathKind(spec.path);
  if (kind === 'missing') throw new InputError(`dataset not found: ${spec.path}`);
  if (kind === 'special') throw new InputError(`${spec.path}: a dataset is a regular file or a directory; this is neither (a device, FIFO or socket)`);
  const format = spec.format && spec.format !== 'auto' ? spec.format : await detectFormat(spec.path, kind);
  const split = spec.split ?? 'test';
  switch (format) {
    case 'idx': {
      if (kind === 'directory') {
        const files = await findIdxSplit(spec.path, split);
        return openIdx(files.images, files.labels, `IDX ${split} split of ${spec.path}`, spec.maxFileBytes);
      }
      return openIdx(spec.path, siblingIdxLabels(spec.path), `IDX ${spec.path}`, spec.maxFileBytes);
    }
    case 'npy':
      if (kind !== 'file') throw new InputError(`${spec.path}: an NPY dataset must be a .npy file, not a directory`);
      return openNpy(spec.path, spec.labelsPath, pre, spec.maxFileBytes);
    case 'image-folder':
      if (kind !== 'directory') throw new InputError(`${spec.path}: an image folder dataset must be a directory`);
      return openImageFolder(spec.path, spec.classNames, spec.maxFileBytes);
  }
}

async function detectFormat(path: string, kind: 'file' | 'directory'): Promise<Exclude<DatasetFormat, 'auto'>> {
  if (kind === 'directory') return (await hasIdxFiles(path)) ? 'idx' : 'image-folder';
  const name = basename(path).toLowerCase();
  if (name.endsWith('.npy')) return 'npy';
  if (name.includes('idx') || name.includes('ubyte')) return 'idx';
  throw new InputError(`${path}: cannot tell the dataset format from the name; pass --format idx|npy|image-folder`);
}
