import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { partitionBlocks } from '../../workers/engine/blocks';
import { MinMaxObserver } from '../../workers/engine/calibration';
import { forward, loadImageModel } from '../../workers/engine/image-model';
import { QuantizedModel } from '../../workers/engine/simulation';
import { findSites } from '../../workers/engine/sites';
import { classificationLogits } from '../../workers/fimaq/logits';
import { BlockCheckpoint, BlockReconstruction } from '../../workers/fimaq/reconstruct';
import { UniformQuantizer } from '../../workers/engine/quantizer';
import { sampleImages, trainedTinyClassifier } from './fixtures';

/** Generous for two shared, loaded cores; on an idle machine the run takes seconds. */
const TIMEOUT_MS = 300_000;

beforeAll(async () => {
  await initBackend();
});

describe('block-wise reconstruction', () => {
  it.each(['onnxruntime', 'tfjs'] as const)('lowers a transformer block\'s output error and bakes hard-rounded weights on the quantization grid (%s)', async (trainingRuntime) => {
    const model = loadImageModel(fs.readFileSync(trainedTinyClassifier), 'tiny');
    const sites = findSites(model.program, { weightBits: 3, activationBits: 3 });
    const quantized = new QuantizedModel(model.program, sites);
    const images = await sampleImages('train', 64);
    const observer = new MinMaxObserver(quantized);
    tf.tidy(() => { model.program.run({ [model.input.name]: images }, { hooks: observer.hooks() }); });
    observer.applyTo(quantized);
    observer.dispose();
    const blocks = partitionBlocks(model.program, sites);
    const fpOutputs = forward(model, images);
    const reconstruction = new BlockReconstruction(quantized, blocks, images, fpOutputs, {
      loss: 'fisher_dplr', iters: 40, batchSize: 16, rank: 2, seed: 0, temperature: 20, dropProbability: 0.5,
      expandAttentionScales: true, logits: classificationLogits, outputName: model.outputName, trainingRuntime,
    });
    const reports = await reconstruction.run();
    reconstruction.dispose();
    // Every block of the tiny ViT (patch embedding, transformer blocks, head) trains where asked.
    expect(reports.map((r) => r.runtime)).toEqual(reports.map(() => trainingRuntime));
    expect(reports.filter((r) => r.kind !== 'head').map((r) => r.snapshotRuntime)).toEqual(reports.filter((r) => r.kind !== 'head').map(() => trainingRuntime));
    const block0 = reports.find((r) => r.name === 'block0');
    expect(block0?.mseAfter).toBeLessThan(block0?.mseBefore as number);
    // No block leaves reconstruction worse than it came in: one that got worse kept its earlier parameters.
    for (const report of reports) {
      expect(report.mseAfter).toBeLessThanOrEqual(report.mseBefore);
      if (!report.kept) expect(report.mseRejected).toBeGreaterThan(report.mseBefore);
      expect(report.lastTaskLoss).toEqual(expect.any(Number));
    }
    // Learned weights sit exactly on their quantizer's grid, so the exporter's round-to-nearest keeps them.
    const site = sites.find((s) => s.kind === 'linear') as (typeof sites)[number];
    const weightOperand = site.operands.find((o) => o.role === 'weight') as (typeof site.operands)[number];
    const weight = model.program.constantValue(weightOperand.tensor) as tf.Tensor;
    const requantized = quantized.quantizerOf(site, weightOperand).apply(weight);
    expect(tf.max(tf.abs(tf.sub(requantized, weight))).dataSync()[0]).toBeLessThan(1e-6);
    // Per-head attention scales were expanded to per head × row.
    const attention = sites.find((s) => s.kind === 'dynamic-matmul') as (typeof sites)[number];
    expect(quantized.quantizerOf(attention, attention.operands[0]).scale.shape[2]).toBeGreaterThan(1);
  }, TIMEOUT_MS);

  it('a block checkpoint puts back the weights and quantizers a block had', async () => {
    const model = loadImageModel(fs.readFileSync(trainedTinyClassifier), 'tiny');
    const sites = findSites(model.program, { weightBits: 4, activationBits: 4 });
    const quantized = new QuantizedModel(model.program, sites);
    const images = await sampleImages('train', 8);
    const observer = new MinMaxObserver(quantized);
    tf.tidy(() => { model.program.run({ [model.input.name]: images }, { hooks: observer.hooks() }); });
    observer.applyTo(quantized);
    observer.dispose();
    const block = partitionBlocks(model.program, sites).find((b) => b.name === 'block0') as ReturnType<typeof partitionBlocks>[number];
    const output = () => tf.tidy(() => model.program.run({ [model.input.name]: images }, { hooks: quantized.hooks() })[model.outputName]);
    const before = output();
    const checkpoint = new BlockCheckpoint(quantized, block);
    for (const site of block.sites) {
      for (const operand of site.operands) {
        const quantizer = quantized.quantizerOf(site, operand);
        quantized.setQuantizer(site, operand, new UniformQuantizer(quantizer.bits, tf.mul(quantizer.scale, 3), quantizer.zeroPoint));
        if (operand.role === 'weight') model.program.setConstant(operand.tensor, tf.zerosLike(model.program.constantValue(operand.tensor) as tf.Tensor));
      }
    }
    const changed = output();
    expect(tf.max(tf.abs(tf.sub(changed, before))).dataSync()[0]).toBeGreaterThan(1e-3);
    checkpoint.restore();
    checkpoint.dispose();
    const restored = output();
    expect(tf.max(tf.abs(tf.sub(restored, before))).dataSync()[0]).toBe(0);
    [before, changed, restored, images].forEach((t) => t.dispose());
  }, TIMEOUT_MS);
});
