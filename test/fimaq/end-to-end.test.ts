import * as fs from 'node:fs';
import { forward } from '../../workers/engine/image-model';
import type { QuantizeResult } from '../../workers/engine/quantize-model';
import { quantizeModel } from '../../workers/quantization';
import type { CalibrationCache } from '../../workers/fimaq/calibrate';
import { argmaxRows, maxAbsDiff, runOrt, tinyEncoder } from '../engine/fixtures';
import { PREPROCESSING, sampleDataset, sampleImages, trainedTinyClassifier } from './fixtures';

/** A few iterations and a coarse search: the whole pipeline in seconds. */
const FAST = { iters: 4, reconSize: 32, batchSize: 16, eqN: 8, searchRounds: 1, rank: 2, seed: 3 };

/** Generous for two shared, loaded cores; on an idle machine the run takes seconds. */
const TIMEOUT_MS = 300_000;

async function quantize(method: string, options: Record<string, unknown> = {}): Promise<QuantizeResult> {
  return quantizeModel({
    model: fs.readFileSync(trainedTinyClassifier), calibration: await sampleDataset('train'), bits: 'w4a4', method, calibSize: 16, methodOptions: { ...FAST, ...options },
  });
}

describe('fimaq end to end on the trained tiny ViT', () => {
  it('quantizes, reports per-block losses, exports what it simulates, and repeats for a seed', async () => {
    const stages = new Set<string>();
    const result = await quantizeModel({
      model: fs.readFileSync(trainedTinyClassifier), calibration: await sampleDataset('train'), bits: 'w4a4', method: 'fimaq', calibSize: 16, methodOptions: FAST,
    }, (p) => stages.add(p.stage));
    expect([...stages]).toEqual(expect.arrayContaining(['calibrate', 'reconstruct', 'export']));
    const stage2 = (result.report.methodReport as { stage2: { loss: string; blocks: { name: string; mseBefore: number; mseAfter: number }[] } }).stage2;
    expect(stage2.loss).toBe('fisher_dplr');
    expect(stage2.blocks.map((b) => b.name)).toEqual(['patch-embedding', 'block0', 'block1', 'head']);

    const images = await sampleImages('test', 64);
    const simulated = forward(result.imageModel, images, { hooks: result.quantized.hooks() });
    const exported = await runOrt(result.onnx, PREPROCESSING.inputName, images.dataSync() as Float32Array, images.shape);
    expect(maxAbsDiff(simulated.dataSync(), exported)).toBeLessThan(1e-3);
    expect(argmaxRows(exported, 10)).toEqual(argmaxRows(simulated.dataSync(), 10));
    result.quantized.dispose();

    const again = await quantize('fimaq');
    expect(Buffer.from(again.onnx).equals(Buffer.from(result.onnx))).toBe(true);
    again.quantized.dispose();
  }, TIMEOUT_MS);

  it('quantizes a retrieval encoder against class prototypes of the labeled reconstruction images', async () => {
    const result = await quantizeModel({
      model: fs.readFileSync(tinyEncoder), calibration: await sampleDataset('train'), bits: 'w4a4', method: 'fimaq', calibSize: 16,
      methodOptions: { ...FAST, task: 'retrieval', reference: { kind: 'prototypes' } },
    });
    const stage2 = (result.report.methodReport as { stage2: { blocks: { name: string; runtime: string }[] } }).stage2;
    expect(stage2.blocks).toEqual(stage2.blocks.map(() => expect.objectContaining({ runtime: 'onnxruntime' })));
    const images = await sampleImages('test', 32);
    const simulated = forward(result.imageModel, images, { hooks: result.quantized.hooks() });
    const exported = await runOrt(result.onnx, PREPROCESSING.inputName, images.dataSync() as Float32Array, images.shape);
    // Embeddings agree up to the code flips float rounding can cause (workers/engine/README.md,
    // last section): with a block kept at its pre-reconstruction parameters one image of 32 sees one.
    const simulatedRows = Array.from(simulated.dataSync());
    const exportedRows = Array.from(exported);
    const dim = simulatedRows.length / images.shape[0];
    for (let row = 0; row < images.shape[0]; row++) {
      const [a, b] = [simulatedRows.slice(row * dim, (row + 1) * dim), exportedRows.slice(row * dim, (row + 1) * dim)];
      const dot = a.reduce((sum, v, i) => sum + v * b[i], 0);
      expect(dot / Math.sqrt(a.reduce((s2, v) => s2 + v * v, 0) * b.reduce((s2, v) => s2 + v * v, 0))).toBeGreaterThan(0.99);
    }
    result.quantized.dispose();
  }, TIMEOUT_MS);

  it('a calibration cache gives later runs the same stage 1 without computing it', async () => {
    const calibrationCache: CalibrationCache = new Map();
    const first = await quantize('mse', { calibrationCache });
    const reused = await quantize('mse', { calibrationCache });
    const stage1 = (r: QuantizeResult) => (r.report.methodReport as { stage1: { reused?: boolean } }).stage1;
    expect(stage1(first).reused).toBeUndefined();
    expect(stage1(reused).reused).toBe(true);
    expect(calibrationCache.size).toBe(1);
    expect(Buffer.from(reused.onnx).equals(Buffer.from(first.onnx))).toBe(true);
    [first, reused].forEach((r) => r.quantized.dispose());
    calibrationCache.forEach((entry) => entry.state.dispose());
  }, TIMEOUT_MS);
});
