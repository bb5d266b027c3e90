import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fimaq } from '../../cli/support/run-fimaq';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const DEMO_ENCODER = path.join(REPO_ROOT, 'deploy', 'demo', 'models', 'vit-fmnist-emb-op17.onnx');
export const FASHION_MNIST_SAMPLE = path.join(REPO_ROOT, 'deploy', 'demo', 'data', 'fashion-mnist');
/** The demo models' preprocessing (their cards'). */
export const FMNIST_PREPROCESSING = { height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353] };

/**
 * A quantized variant of the demo encoder made in process by the `fimaq quantize` CLI (rtn needs
 * no reconstruction, so this takes seconds); returns the ONNX bytes.
 */
export async function quantizedEncoder(bits: 'w8a8' | 'w4a4', method = 'rtn', extra: string[] = []): Promise<Buffer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'encoder-variant-'));
  try {
    const out = path.join(dir, `${method}-${bits}.onnx`);
    const run = await fimaq('quantize', '--model', DEMO_ENCODER, '--calib', FASHION_MNIST_SAMPLE, '--split', 'train', '--bits', bits, '--method', method, '--calib-size', '32', '--reference', 'gallery', '--out', out, '--json', ...extra);
    if (run.code !== 0) throw new Error(`fimaq quantize ${method} ${bits} failed: ${run.stderr}`);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
