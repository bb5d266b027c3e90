/**
 * FIMA-Q's methods for the engine's registry: `calib` (stage 1), `mse`, `fisher_diag`, `fisher_lr`,
 * `fisher_brecq`, `fisher_dplr` (stage 1 + reconstruction with that loss) and `fimaq`
 * (= fisher_dplr). All share one pipeline so the benchmark compares losses, nothing else.
 */
import * as tf from '@tensorflow/tfjs';
import { MethodContext, MethodReport, QuantizationMethod } from '../engine/methods/method';
import type { StageWork } from '../engine/work';
import { InputError } from '../data/errors';
import { calibrate, calibrationKey, CalibrationSettings, CalibrationSummary } from './calibrate';
import { classificationLogits, l2Normalize, LogitsFunction, retrievalLogits } from './logits';
import { FimaqOptions, ReconstructionLoss, resolveFimaqOptions } from './options';
import { BlockReconstruction, type BlockReport } from './reconstruct';

/** Images of the calibration capture on which candidates are compared by running the product. */
const SEARCH_IMAGES = 32;

function concatBatches(batches: readonly tf.Tensor[]): tf.Tensor {
  return batches.length === 1 ? batches[0].clone() : tf.concat(batches as tf.Tensor[], 0);
}

/** Full-precision model outputs of the images, in batches. */
function modelOutputs(context: MethodContext, images: tf.Tensor, batchSize: number): tf.Tensor {
  const { program, input, outputName } = context.model;
  const parts: tf.Tensor[] = [];
  for (let start = 0; start < images.shape[0]; start += batchSize) {
    parts.push(tf.tidy(() => program.run({ [input.name]: tf.slice(images, start, Math.min(batchSize, images.shape[0] - start)) })[outputName]));
  }
  const joined = tf.concat(parts, 0);
  parts.forEach((p) => p.dispose());
  return joined;
}

/**
 * Class prototypes: the mean L2-normalized FP embedding of each class among the reconstruction
 * images, one reference row per class present.
 */
function classPrototypes(fpOutputs: tf.Tensor, labels: Int32Array): tf.Tensor {
  return tf.tidy(() => {
    const classes = [...new Set(labels)].sort((a, b) => a - b);
    const membership = tf.tensor2d(classes.flatMap((c) => Array.from(labels, (l) => (l === c ? 1 : 0))), [classes.length, labels.length]);
    const sums = tf.matMul(membership, l2Normalize(fpOutputs));
    return tf.div(sums, tf.sum(membership, 1, true));
  });
}

function logitsFor(options: FimaqOptions, fpOutputs: tf.Tensor, labels: Int32Array | undefined): { logits: LogitsFunction; dispose: () => void } {
  if (options.task === 'classification') return { logits: classificationLogits, dispose: () => undefined };
  const { reference } = options;
  if (reference.kind === 'embeddings') {
    const dim = fpOutputs.shape[1] as number;
    if (reference.dim !== dim || reference.vectors.length === 0 || reference.vectors.length % dim !== 0) {
      throw new InputError(`the reference set has ${reference.dim}-dimensional rows but the model embeds into ${dim} dimensions`);
    }
    const rows = tf.tensor2d(reference.vectors, [reference.vectors.length / dim, dim]);
    const handle = retrievalLogits(rows, options.retrievalScale);
    rows.dispose();
    return { logits: handle.logits, dispose: () => handle.reference.dispose() };
  }
  if (reference.kind === 'prototypes') {
    if (!labels) throw new InputError('class prototypes need labels, and the reconstruction images came without them');
    const prototypes = classPrototypes(fpOutputs, labels);
    const handle = retrievalLogits(prototypes, options.retrievalScale);
    prototypes.dispose();
    return { logits: handle.logits, dispose: () => handle.reference.dispose() };
  }
  // The gallery: the full-precision embeddings of the reconstruction images themselves.
  const handle = retrievalLogits(fpOutputs, options.retrievalScale);
  return { logits: handle.logits, dispose: () => handle.reference.dispose() };
}

/** Checks that need no compute, so bad requests fail before any long work. */
function validate(context: MethodContext, options: FimaqOptions, reconstructs: boolean): void {
  if (reconstructs && context.sourceSize < options.reconSize) {
    throw new InputError(`the calibration set has ${context.sourceSize} images, fewer than the ${options.reconSize} reconstruction images requested; lower --recon-size or use a larger set`);
  }
  if (reconstructs && options.task === 'retrieval' && options.reference.kind === 'prototypes' && !context.sourceHasLabels) {
    throw new InputError('class prototypes need labels, which the calibration source does not carry; use the gallery reference (the reconstruction images) or give reference embeddings');
  }
}

/**
 * Estimated costs on the reference machine (see StageWork), measured on the demo classifier with
 * 128 reconstruction images: one reconstruction iteration of a transformer block at batch 32
 * (15 to 21 ms); one of a smaller block (patch embedding, head) a twentieth to a tenth of that;
 * and each block's setup and Fisher snapshots, whatever `iters` is, about a second.
 */
const ITERATION_SECONDS = 0.021;
const SMALL_BLOCK_ITERATION_SHARE = 0.07;
const BLOCK_SETUP_SECONDS = 1;
/**
 * Stage 1 costs about as much as this many transformer-block iterations per block with sites at
 * eq_n 128, whatever `iters` is: 35 to 52 s for the demo classifier's 8 blocks.
 */
const STAGE1_ITERATIONS_PER_BLOCK = 275;

async function runFimaq(context: MethodContext, loss: ReconstructionLoss | undefined): Promise<MethodReport> {
  const options = resolveFimaqOptions(context.options as Partial<FimaqOptions>);
  validate(context, options, loss !== undefined);
  const blocksWithSites = context.blocks.filter((b) => b.sites.length > 0).length;
  const totalIterations = loss ? options.iters * blocksWithSites : 0;
  const work = stageWork(context, options, loss !== undefined);

  const settings: CalibrationSettings = {
    inputName: context.model.input.name,
    images: context.calibration,
    eqN: options.eqN,
    searchRounds: options.searchRounds,
    searchImages: SEARCH_IMAGES,
    search: true,
    onSite: async (done, total, site) => {
      const blockIndex = context.blocks.findIndex((b) => b.sites.some((s) => s.id === site.id));
      context.onProgress({
        stage: 'calibrate', done, total, detail: `site ${done}/${total} (${site.id})`, work: work(done, 0, 0),
        ...(blockIndex >= 0 ? { blockIndex, blockCount: context.blocks.length } : {}),
      });
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  const key = options.calibrationCache ? calibrationKey(context.quantized, settings) : '';
  const cached = options.calibrationCache?.get(key);
  let calibration: CalibrationSummary;
  if (cached) {
    context.quantized.restore(cached.state);
    calibration = { ...cached.summary, reused: true };
  } else {
    calibration = await calibrate(context.quantized, settings);
    options.calibrationCache?.set(key, { state: context.quantized.snapshot(), summary: calibration });
  }
  if (!loss) return { stage1: calibration, options: publicOptions(options) };

  const reconStarted = performance.now();
  const { batches, labels } = await context.loadImages(options.reconSize, options.batchSize);
  const images = concatBatches(batches);
  batches.forEach((b) => b.dispose());
  const fpOutputs = modelOutputs(context, images, options.batchSize);
  const logits = logitsFor(options, fpOutputs, labels);
  let iterationsDone = 0;
  const reconstruction = new BlockReconstruction(context.quantized, context.blocks, images, fpOutputs, {
    loss,
    iters: options.iters,
    batchSize: options.batchSize,
    rank: options.rank,
    seed: options.seed,
    temperature: options.temperature,
    dropProbability: options.dropProbability,
    expandAttentionScales: options.expandAttentionScales,
    logits: logits.logits,
    outputName: context.model.outputName,
    threads: options.threads,
    onIteration: async ({ block, blockIndex, iteration, loss: value, taskLoss, regularizer }) => {
      iterationsDone++;
      if (iteration % 10 !== 0 && iteration !== options.iters) return;
      context.onProgress({
        stage: 'reconstruct', done: iterationsDone, total: totalIterations, block: block.name, blockIndex, blockCount: context.blocks.length,
        iteration, iterations: options.iters, loss: value, taskLoss, regularizer, work: work(Infinity, blockIndex, iteration),
        detail: `${block.name} iteration ${iteration}/${options.iters}: ${describeLoss(taskLoss, regularizer)}`,
      });
      await new Promise((resolve) => setImmediate(resolve));
    },
    onBlockDone: (report, blockIndex) => {
      context.onProgress({
        stage: 'reconstruct', done: iterationsDone, total: totalIterations, block: report.name, blockIndex, blockCount: context.blocks.length,
        work: work(Infinity, blockIndex + 1, 0), detail: describeBlockOutcome(report), milestone: true,
      });
    },
  });
  try {
    const blocks = await reconstruction.run();
    return {
      stage1: calibration,
      stage2: { loss, seconds: (performance.now() - reconStarted) / 1000, blocks },
      options: publicOptions(options),
    };
  } finally {
    reconstruction.dispose();
    logits.dispose();
    [images, fpOutputs].forEach((t) => t.dispose());
  }
}

/**
 * The method's stages with their estimated costs, as a function of the sites calibrated and
 * where the reconstruction is (block index, iteration within it). Reconstruction counts in
 * estimated seconds: a block's setup once its first iterations ran, then each iteration at its
 * block's share.
 */
function stageWork(context: MethodContext, options: FimaqOptions, reconstructs: boolean): (sites: number, blockIndex: number, iteration: number) => StageWork[] {
  const siteCount = context.quantized.sites.length;
  const shares = context.blocks.map((b) => (b.sites.length === 0 ? 0 : b.kind === 'transformer' ? 1 : SMALL_BLOCK_ITERATION_SHARE));
  const blockSeconds = shares.map((share) => (share === 0 ? 0 : BLOCK_SETUP_SECONDS + options.iters * share * ITERATION_SECONDS));
  const blocksWithSites = shares.filter((share) => share > 0).length;
  const calibrationSeconds = (STAGE1_ITERATIONS_PER_BLOCK * Math.max(1, blocksWithSites) * options.eqN * ITERATION_SECONDS) / 128;
  const reconstructed = (blockIndex: number, iteration: number): number =>
    blockSeconds.slice(0, blockIndex).reduce((sum, seconds) => sum + seconds, 0)
    + (iteration > 0 ? BLOCK_SETUP_SECONDS + iteration * shares[blockIndex] * ITERATION_SECONDS : 0);
  return (sites, blockIndex, iteration) => [
    { stage: 'calibrate', done: Math.min(sites, siteCount), total: siteCount, unitSeconds: calibrationSeconds / siteCount },
    ...(reconstructs ? [{ stage: 'reconstruct', done: reconstructed(blockIndex, iteration), total: reconstructed(shares.length, 0), unitSeconds: 1 }] : []),
  ];
}

const figure = (value: number): string => value.toPrecision(3);

/** The two parts of the objective apart: the regularizer grows as β anneals, so a rising total is not divergence. */
function describeLoss(taskLoss: number, regularizer: number): string {
  return regularizer > 0
    ? `task loss ${figure(taskLoss)} + rounding regularizer ${figure(regularizer)} (grows as rounding hardens)`
    : `task loss ${figure(taskLoss)} (rounding regularizer off during warm-up)`;
}

function describeBlockOutcome(report: BlockReport): string {
  return report.kept
    ? `${report.name} done: output MSE ${figure(report.mseBefore)} -> ${figure(report.mseAfter)}`
    : `${report.name} done: reconstruction raised output MSE ${figure(report.mseBefore)} -> ${figure(report.mseRejected ?? report.mseAfter)}; the block keeps its pre-reconstruction parameters`;
}

/** The options as reported (reference vectors and the calibration cache left out). */
function publicOptions(options: FimaqOptions): Record<string, unknown> {
  const { calibrationCache: _cache, ...reported } = options;
  return { ...reported, reference: options.reference.kind };
}

const withLoss = (loss: ReconstructionLoss | undefined): QuantizationMethod => (context) => runFimaq(context, loss);

export const fimaqMethods: Readonly<Record<string, QuantizationMethod>> = {
  calib: withLoss(undefined),
  mse: withLoss('mse'),
  fisher_diag: withLoss('fisher_diag'),
  fisher_lr: withLoss('fisher_lr'),
  fisher_brecq: withLoss('fisher_brecq'),
  fisher_dplr: withLoss('fisher_dplr'),
  fimaq: withLoss('fisher_dplr'),
};
