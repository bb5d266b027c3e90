/** Shared test fixtures: the engine's small ViT exports and an onnxruntime reference runner. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { CalibrationSource } from '../../workers/engine/quantize-model';

export const fixtureDir = path.join(__dirname, '..', 'fixtures', 'engine');
export const tinyClassifier = (opset: 13 | 17): string => path.join(fixtureDir, `tiny-vit-cls-op${opset}.onnx`);
export const tinyEncoder = path.join(fixtureDir, 'tiny-vit-emb-op17.onnx');

const referenceDir = path.join(__dirname, '..', '..', 'deploy', 'demo', 'models');
/** The trained demo models when the training run has produced them. */
export const referenceModels = ['vit-fmnist-cls-op17', 'vit-fmnist-cls-op13', 'vit-fmnist-emb-op17']
  .map((name) => path.join(referenceDir, `${name}.onnx`))
  .filter((file) => fs.existsSync(file));

/** Deterministic pseudo-random images in roughly the normalized-pixel range. */
export function syntheticImages(count: number, chw: readonly number[], seed = 1): Float32Array {
  const data = new Float32Array(count * chw.reduce((a, b) => a * b, 1));
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    data[i] = (state / 4294967296) * 3 - 1;
  }
  return data;
}

export async function runOrt(modelPath: string | Uint8Array, inputName: string, data: Float32Array, shape: number[]): Promise<Float32Array> {
  const session = typeof modelPath === 'string' ? await ort.InferenceSession.create(modelPath) : await ort.InferenceSession.create(modelPath);
  const result = await session.run({ [inputName]: new ort.Tensor('float32', data, shape) });
  await session.release();
  return result[session.outputNames[0]].data as Float32Array;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** An in-memory calibration source over synthetic images. */
export function syntheticCalibration(count: number, chw: readonly number[], seed = 7): CalibrationSource {
  const data = syntheticImages(count, chw, seed);
  const per = chw.reduce((a, b) => a * b, 1);
  return {
    size: count,
    description: `${count} synthetic images`,
    async *batches({ batchSize, limit = count, offset = 0 }) {
      for (let start = offset; start < Math.min(count, offset + limit); start += batchSize) {
        const n = Math.min(batchSize, offset + limit - start, count - start);
        yield { data: data.slice(start * per, (start + n) * per), dims: [n, ...chw] };
      }
    },
  };
}

/** Predicted class per row of a [N, K] logits array. */
export function argmaxRows(values: ArrayLike<number>, classes: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < values.length / classes; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (values[r * classes + c] > values[r * classes + best]) best = c;
    out.push(best);
  }
  return out;
}
