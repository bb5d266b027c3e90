/**
 * How FIMA-Q's stage 2 scales with tokens and width (`npm run bench:fimaq-step`), both runtimes
 * side by side: a transformer block's reconstruction step (fisher_dplr, batch 32, W4A4) as an
 * onnxruntime training graph and on the tfjs simulation, and a Fisher snapshot per image, on
 * synthetic ViTs (2 blocks, 32-wide heads, MLP 2×width, random weights).
 *   FIMAQ_STEP_SHAPES=17x128,65x128,17x256,65x256 (tokens × width; tokens − 1 a square)
 *   FIMAQ_STEP_ITERS=100  FIMAQ_STEP_TFJS_ITERS=10  FIMAQ_STEP_THREADS=0 (onnxruntime threads)
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { partitionBlocks } from '../../workers/engine/blocks';
import { MinMaxObserver } from '../../workers/engine/calibration';
import { forward, loadImageModel } from '../../workers/engine/image-model';
import { QuantizedModel } from '../../workers/engine/simulation';
import { findSites } from '../../workers/engine/sites';
import { classificationLogits } from '../../workers/fimaq/logits';
import { BlockReconstruction, BlockReport } from '../../workers/fimaq/reconstruct';
import { syntheticVit } from './synthetic-vit';

const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const SHAPES = env('FIMAQ_STEP_SHAPES', '17x128,65x128,17x256,65x256').split(',').map((s) => s.split('x').map(Number) as [number, number]);
const ITERS = Number(env('FIMAQ_STEP_ITERS', '100'));
const TFJS_ITERS = Number(env('FIMAQ_STEP_TFJS_ITERS', '10'));
const THREADS = Number(env('FIMAQ_STEP_THREADS', '0'));
const IMAGES = 64;
const RANK = 5;

/** block0's report after reconstructing the synthetic model on one runtime. */
async function block0(tokens: number, dim: number, runtime: 'onnxruntime' | 'tfjs', iters: number): Promise<BlockReport> {
  const side = 4 * Math.sqrt(tokens - 1);
  if (!Number.isInteger(side)) throw new Error(`tokens − 1 must be a square, got ${tokens}`);
  const model = loadImageModel(syntheticVit({ imageSize: side, patch: 4, dim, heads: dim / 32, mlp: 2 * dim, depth: 2, classes: 10 }), `vit-${tokens}x${dim}`);
  const sites = findSites(model.program, { weightBits: 4, activationBits: 4 });
  const quantized = new QuantizedModel(model.program, sites);
  const images = tf.randomNormal([IMAGES, 1, side, side], 0, 1, 'float32', 7);
  const observer = new MinMaxObserver(quantized);
  tf.tidy(() => { model.program.run({ [model.input.name]: images }, { hooks: observer.hooks() }); });
  observer.applyTo(quantized);
  observer.dispose();
  const fpOutputs = forward(model, images);
  const reconstruction = new BlockReconstruction(quantized, partitionBlocks(model.program, sites), images, fpOutputs, {
    loss: 'fisher_dplr', iters, batchSize: 32, rank: RANK, seed: 0, temperature: 20, dropProbability: 0.5,
    expandAttentionScales: true, logits: classificationLogits, outputName: model.outputName, trainingRuntime: runtime, threads: THREADS,
  });
  const reports = await reconstruction.run();
  reconstruction.dispose();
  [images, fpOutputs].forEach((t) => t.dispose());
  quantized.dispose();
  const report = reports.find((r) => r.name === 'block0');
  if (!report || report.runtime !== runtime) throw new Error(`block0 did not train on ${runtime}: ${report?.tfjsBecause ?? 'no report'}`);
  return report;
}

async function main(): Promise<void> {
  await initBackend();
  console.log(`synthetic ViTs, 2 blocks, W4A4 fisher_dplr, batch 32, rank ${RANK}; onnxruntime ${ITERS} iterations, tfjs ${TFJS_ITERS}; `
    + `snapshots over ${IMAGES} images; onnxruntime threads ${THREADS || 'all cores'}`);
  console.log('\n| tokens | width | onnxruntime ms/step | tfjs ms/step | tfjs ÷ onnxruntime | snapshot ms/image, onnxruntime | tfjs | tfjs ÷ onnxruntime |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [tokens, dim] of SHAPES) {
    const [ort, simulated] = [await block0(tokens, dim, 'onnxruntime', ITERS), await block0(tokens, dim, 'tfjs', TFJS_ITERS)];
    const stepMs = (r: BlockReport): number => 1000 / r.iterationsPerSecond;
    const snapshotMs = (r: BlockReport): number => (1000 * r.snapshotSeconds) / RANK / IMAGES;
    console.log(`| ${tokens} | ${dim} | ${stepMs(ort).toFixed(1)} | ${stepMs(simulated).toFixed(1)} | ${(stepMs(simulated) / stepMs(ort)).toFixed(1)}x `
      + `| ${snapshotMs(ort).toFixed(2)} | ${snapshotMs(simulated).toFixed(2)} | ${(snapshotMs(simulated) / snapshotMs(ort)).toFixed(1)}x |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
