import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { forward, loadImageModel, loadImageModelFile } from '../../workers/engine/image-model';
import { decodeModel, encodeModel } from '../../workers/engine/onnx/proto';
import { quantizeModel } from '../../workers/engine/quantize-model';
import { maxAbsDiff, referenceModels, runOrt, syntheticCalibration, syntheticImages, tinyClassifier, tinyEncoder } from './fixtures';

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

describe('a model exported with a fixed batch size', () => {
  it('loads, quantizes in batches of that size and matches onnxruntime', async () => {
    const proto = decodeModel(fs.readFileSync(tinyClassifier(17)));
    const dim = proto.graph?.input?.[0].type?.tensorType?.shape?.dim?.[0] as { dimParam?: string | null; dimValue?: number | null };
    dim.dimParam = null;
    dim.dimValue = 1;
    const bytes = encodeModel(proto);
    const model = loadImageModel(bytes, 'fixed-batch.onnx');
    expect(model.input.fixedBatch).toBe(1);
    const data = syntheticImages(1, model.input.chw);
    const ours = forward(model, tf.tensor(data, [1, ...model.input.chw]));
    expect(maxAbsDiff(ours.dataSync(), await runOrt(bytes, model.input.name, data, [1, ...model.input.chw]))).toBeLessThanOrEqual(1e-4);
    const result = await quantizeModel({ model: bytes, calibration: syntheticCalibration(4, [1, 28, 28]), bits: 'w4a4', method: 'rtn', calibSize: 4 });
    expect(result.quantized.sites.length).toBe(14);
    result.quantized.dispose();
  });
});
