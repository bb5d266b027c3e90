import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { forward, loadImageModelFile } from '../../workers/engine/image-model';
import { syntheticImages, tinyClassifier } from './fixtures';

it('prof', async () => {
  await initBackend();
  const model = loadImageModelFile(process.env.M ?? tinyClassifier(17));
  const x = tf.tensor(syntheticImages(32, model.input.chw), [32, ...model.input.chw]);
  for (let i = 0; i < 3; i++) forward(model, x).dispose();
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) { const y = forward(model, x); y.dataSync(); y.dispose(); }
  console.log('ms per batch', (performance.now() - t0) / 10);
  const info = await tf.profile(() => { forward(model, x).dispose(); });
  const by: Record<string, number> = {};
  for (const k of info.kernels) by[k.name] = (by[k.name] ?? 0) + (k.kernelTimeMs as number);
  const total = Object.values(by).reduce((a, b) => a + b, 0);
  console.log('kernels', info.kernels.length, 'kernel ms', total.toFixed(1), Object.entries(by).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', '));
});
