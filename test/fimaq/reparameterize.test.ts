import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { forward, loadImageModelFile, type ImageModel } from '../../workers/engine/image-model';
import { minMaxParameters, fakeQuantize } from '../../workers/engine/quantizer';
import { QuantizedModel } from '../../workers/engine/simulation';
import { findSites } from '../../workers/engine/sites';
import { reparameterizeLayerNorms } from '../../workers/fimaq/calibrate';
import { findLayerNormFolds } from '../../workers/fimaq/reparameterize';
import { captureActivations, disposeCaptured } from '../../workers/fimaq/site-io';
import { sampleImages, trainedTinyClassifier } from './fixtures';

beforeAll(async () => {
  await initBackend();
});

/** Output MSE of a per-tensor min/max 4-bit quantization of every folded LayerNorm output, summed. */
function perTensorError(model: ImageModel, quantized: QuantizedModel, images: tf.Tensor): number {
  const readers = findLayerNormFolds(model.program, quantized.sites).map((f) => f.linears[0].site);
  const captured = captureActivations(model.program, model.input.name, [images], readers);
  let total = 0;
  for (const bySite of captured.values()) {
    const x = bySite.get(0) as tf.Tensor;
    total += tf.tidy(() => {
      const { scale, zeroPoint } = minMaxParameters(tf.min(x), tf.max(x), 4);
      return tf.mean(tf.squaredDifference(fakeQuantize(x, scale, zeroPoint, 4), x)).div(tf.moments(x).variance).dataSync()[0];
    });
  }
  disposeCaptured(captured);
  return total;
}

describe('post-LayerNorm reparameterization', () => {
  it('folds every qkv and fc1 input, keeps the FP function (≤ 1e-5) and makes the inputs per-tensor friendly', async () => {
    const model = loadImageModelFile(trainedTinyClassifier);
    const quantized = new QuantizedModel(model.program, findSites(model.program, { weightBits: 4, activationBits: 4 }));
    const images = await sampleImages('train', 32);
    const before = forward(model, images);
    const errorBefore = perTensorError(model, quantized, images);
    const folded = reparameterizeLayerNorms(quantized, model.input.name, [images]);
    expect(folded).toHaveLength(4); // norm1 → qkv and norm2 → fc1 in each of the two blocks
    const after = forward(model, images);
    const worst = tf.max(tf.abs(tf.sub(before, after))).dataSync()[0];
    expect(worst).toBeLessThanOrEqual(1e-5);
    expect(perTensorError(model, quantized, images)).toBeLessThan(errorBefore);
    expect([...model.program.changedConstants].length).toBeGreaterThanOrEqual(4 * 4); // γ, β, W, bias per fold
  });
});
