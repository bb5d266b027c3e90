import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Preprocessing, TensorLayout } from '../common/preprocessing';
import { InputError } from './errors';
import type { DatasetFormat, DatasetSpec, DatasetSplit } from './types';

/** The dataset and preprocessing flags shared by `fimaq evaluate` and `fimaq quantize`, as parsed. */
export interface DatasetCliOptions {
  data: string;
  format: DatasetFormat;
  split?: DatasetSplit;
  labels?: string;
  mean?: number[];
  std?: number[];
  size?: { height: number; width: number };
  channels?: number;
  layout?: TensorLayout;
  inputName?: string;
}

/** Help text describing the accepted dataset formats, for a command's `--help`. */
export const DATASET_FORMATS_HELP = `
Dataset formats (--data PATH, detected from the path unless --format is given):
  IDX directory   a folder with <split>-images-idx3-ubyte[.gz] and <split>-labels-idx1-ubyte[.gz]
                  (MNIST / Fashion-MNIST layout; the test split may be named t10k-*). --split picks
                  train or test. A single *-images-idx3-ubyte[.gz] file also works; its labels are
                  read from the matching *-labels-idx1-ubyte[.gz] file when present.
  image folder    a folder of PNG/JPEG files, one subfolder per class (class = subfolder name; names
                  that are integers are label indices, names matching the model card's labels take
                  their index, others are numbered in sorted order). Images directly in the folder
                  are unlabeled. Images must already have the model's size; gray images feed RGB
                  models, RGB images feed gray models only if they are gray.
  NPY file        images.npy: uint8 pixels (0..255) or float32 pixels scaled to 0..1, shaped
                  [N,H,W], [N,H,W,C] or [N,C,H,W]. Labels (integer, shape [N]) come from
                  images.labels.npy next to it when present, or from --labels FILE.
Preprocessing: x = (pixel / 255 - mean) / std per channel, in the model's layout. It comes from the
model card (<model>.card.json) when there is one; the flags above override it.`;

/** Adds the dataset and preprocessing flags to a command. */
export function addDatasetOptions(cmd: Command, defaults: { split: DatasetSplit } = { split: 'test' }): Command {
  return cmd
    .requiredOption('--data <path>', 'dataset: IDX directory or file, image folder, or .npy file')
    .addOption(new Option('--format <format>', 'dataset format').choices(['auto', 'idx', 'image-folder', 'npy']).default('auto'))
    .addOption(new Option('--split <split>', 'IDX split').choices(['train', 'test']).default(defaults.split))
    .option('--labels <file>', 'NPY labels file (default: <images>.labels.npy when present)')
    .option('--mean <values>', 'per-channel mean after scaling to [0,1], comma-separated', parseNumberList)
    .option('--std <values>', 'per-channel std, comma-separated', parseNumberList)
    .option('--size <HxW>', 'model input height x width (e.g. 28x28, or 28)', parseSize)
    .addOption(new Option('--channels <n>', 'model input channels').choices(['1', '3']).argParser(Number))
    .addOption(new Option('--layout <layout>', 'model input layout').choices(['NCHW', 'NHWC']))
    .option('--input-name <name>', 'name of the model input that takes the image');
}

/**
 * Merges preprocessing sources, the first having the highest precedence: typically the flags,
 * then the model card, then what the ONNX input metadata tells. A one-channel mean/std given for
 * a three-channel model is repeated. Fails naming what is still missing.
 */
export function resolvePreprocessing(flags: DatasetCliOptions, ...fallbacks: Partial<Preprocessing>[]): Preprocessing {
  const fromFlags: Partial<Preprocessing> = {
    inputName: flags.inputName,
    layout: flags.layout,
    height: flags.size?.height,
    width: flags.size?.width,
    channels: flags.channels,
    mean: flags.mean,
    std: flags.std,
  };
  const pick = <K extends keyof Preprocessing>(key: K): Preprocessing[K] | undefined =>
    [fromFlags, ...fallbacks].map((p) => p[key]).find((v) => v !== undefined);
  const channels = pick('channels');
  const merged = {
    inputName: pick('inputName'),
    layout: pick('layout'),
    height: pick('height'),
    width: pick('width'),
    channels,
    mean: broadcast(pick('mean'), channels),
    std: broadcast(pick('std'), channels),
  };
  const missing = Object.entries(merged).filter(([, v]) => v === undefined).map(([k]) => k);
  if (missing.length > 0) {
    throw new InputError(`preprocessing unknown: ${missing.join(', ')}; give a model card or the matching flags (--mean, --std, --size, --channels, --layout, --input-name)`);
  }
  return merged as Preprocessing;
}

function broadcast(values: number[] | undefined, channels: number | undefined): number[] | undefined {
  if (values && values.length === 1 && channels !== undefined && channels > 1) return new Array<number>(channels).fill(values[0]);
  return values;
}

function parseNumberList(text: string): number[] {
  const values = text.split(',').map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((v) => !Number.isFinite(v))) throw new InvalidArgumentError(`expected comma-separated numbers, got "${text}"`);
  return values;
}

function parseSize(text: string): { height: number; width: number } {
  const m = /^(\d+)(?:x(\d+))?$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`expected a size like 28x28 or 28, got "${text}"`);
  const height = Number(m[1]);
  return { height, width: m[2] ? Number(m[2]) : height };
}

/** The DatasetSpec the parsed flags describe. */
export function datasetSpecFromOptions(flags: DatasetCliOptions, classNames?: readonly string[]): DatasetSpec {
  return { path: flags.data, format: flags.format, split: flags.split, labelsPath: flags.labels, classNames };
}
