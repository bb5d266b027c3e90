/**
 * The dataset layer: reads IDX, image folders and NPY into batches of preprocessed tensors for
 * a model. Pure (no gateway imports): the CLI, the quantization worker and the gateway use it.
 *
 *   const ds = await openDataset({ path: 'deploy/demo/data/fashion-mnist', split: 'test' }, pre);
 *   for await (const batch of ds.batches({ batchSize: 64, limit: 128 })) { ... }
 */
export { openDataset } from './open';
export { imageToTensor } from './image';
export { ImageTooLargeError } from './image-header';
export { InputError } from './errors';
export { describeSpecialFile, readInputFile } from './files';
export { addDatasetOptions, resolvePreprocessing, datasetSpecFromOptions, DATASET_FORMATS_HELP } from './cli-options';
export type { DatasetCliOptions } from './cli-options';
export type { DatasetFormat, DatasetSplit, ImageBatch, ImageDataset } from './types';
