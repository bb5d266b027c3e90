/** @jest-environment ./test/engine/ort-environment.js */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { forward, loadImageModelFile } from '../../workers/engine/image-model';
import { maxAbsDiff, referenceModels, runOrt, syntheticImages, tinyClassifier, tinyEncoder } from './fixtures';

const models = [tinyClassifier(13), tinyClassifier(17), tinyEncoder, ...referenceModels];

beforeAll(async () => {
  await initBackend();
});

describe.each(models)('engine vs onnxruntime on %s', (file) => {
  it('agrees within 1e-4 on a batch of 8', async () => {
    expect(fs.existsSync(file)).toBe(true);
    const model = loadImageModelFile(file);
    const shape = [8, ...model.input.chw];
    const data = syntheticImages(8, model.input.chw);
    const engine = forward(model, tf.tensor(data, shape));
    const ours = engine.dataSync();
    engine.dispose();
    const reference = await runOrt(file, model.input.name, data, shape);
    const diff = maxAbsDiff(ours, reference);
    console.log(`${file}: max |Δ| = ${diff.toExponential(2)} (${tf.getBackend()})`);
    expect(diff).toBeLessThanOrEqual(1e-4);
  });
});
