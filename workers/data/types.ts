import type { TensorLayout } from '../common/preprocessing';

/** Dataset formats the readers understand; `auto` detects the format from the path. */
export type DatasetFormat = 'auto' | 'idx' | 'image-folder' | 'npy';

export type DatasetSplit = 'train' | 'test';

/** Where a dataset lives and how to read it. The preprocessing is passed separately. */
export interface DatasetSpec {
  /** An IDX directory, a single IDX images file, an image folder or an `.npy` file. */
  path: string;
  format?: DatasetFormat;
  /** For IDX directories: which split to read (default `test`). */
  split?: DatasetSplit;
  /** For NPY: an explicit labels file; by default `<name>.labels.npy` next to the images is used when present. */
  labelsPath?: string;
  /**
   * For image folders whose subfolders are named after classes: the model's labels in output
   * order, so that folder `Sandal` gets the label index of `Sandal`. See `resolveClassIndices`.
   */
  classNames?: readonly string[];
  /** Largest file read (each file of a folder on its own, gzip data once inflated); default 2 GiB. */
  maxFileBytes?: number;
}

/** One batch of preprocessed images in the model's layout. */
export interface ImageBatch {
  /** `dims[0]` images, each `channels * height * width` floats, in `layout` order. */
  data: Float32Array;
  /** [N, C, H, W] for NCHW, [N, H, W, C] for NHWC. */
  dims: number[];
  /** Class index of each image, when the dataset has labels. */
  labels?: Int32Array;
  /** Index of the batch's first image in the dataset. */
  offset: number;
}

export interface BatchOptions {
  batchSize: number;
  /** First image to read (default 0). */
  offset?: number;
  /** Most images to read, from `offset` (default: to the end). */
  limit?: number;
}

/** A dataset opened with a preprocessing: every image it yields fits the model's input. */
export interface ImageDataset {
  /** Number of images. */
  readonly size: number;
  readonly hasLabels: boolean;
  /** Class names in label order, when the dataset names its classes (image folders). */
  readonly classNames?: readonly string[];
  /** Classes the labels span: the class names when named, else the largest label + 1; undefined without labels. */
  readonly classCount?: number;
  /** Human-readable description, e.g. `IDX test split of /data/fashion-mnist (10000 images)`. */
  readonly description: string;
  batches(options: BatchOptions): AsyncIterableIterator<ImageBatch>;
}

/** Layout of raw pixels as a reader holds them, before preprocessing. */
export type PixelLayout = 'HWC' | 'CHW';

/** One image as read from disk, before normalization. */
export interface RawImage {
  pixels: Uint8Array | Float32Array;
  height: number;
  width: number;
  channels: number;
  layout: PixelLayout;
  /** Multiplier that maps a pixel value to [0, 1]: 1/255 for 8-bit data, 1 for float data. */
  scale: number;
  /** Where the image came from, for error messages (`file.png`, `images.npy[17]`). */
  source: string;
}

/** Internal contract between a format reader and the generic dataset: random access to raw images. */
export interface RawImageSource {
  readonly count: number;
  readonly labels?: Int32Array;
  readonly classNames?: readonly string[];
  readonly description: string;
  image(index: number): RawImage | Promise<RawImage>;
}

export type { TensorLayout };
