import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import * as ort from 'onnxruntime-node';
import { main } from '../../workers/cli/fimaq';
import { npyBuffer } from '../data/fixtures';
import { tinyClassifier } from './fixtures';

function captureIO(): { io: { stdout: PassThrough; stderr: PassThrough }; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  stdout.on('data', (c: Buffer) => chunks.out.push(c));
  stderr.on('data', (c: Buffer) => chunks.err.push(c));
  return { io: { stdout, stderr }, out: () => Buffer.concat(chunks.out).toString(), err: () => Buffer.concat(chunks.err).toString() };
}

describe('fimaq quantize', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fimaq-quantize-'));
  const images = path.join(dir, 'images.npy');
  const out = path.join(dir, 'q.onnx');
  const preprocessing = ['--mean', '0.5', '--std', '0.5'];

  beforeAll(() => {
    const pixels = Uint8Array.from({ length: 24 * 28 * 28 }, (_, i) => (i * 37 + (i >> 9) * 11) % 256);
    fs.writeFileSync(images, npyBuffer('|u1', [24, 28, 28], pixels));
    fs.writeFileSync(path.join(dir, 'images.labels.npy'), npyBuffer('<i8', [24], BigInt64Array.from({ length: 24 }, (_, i) => BigInt(i % 10))));
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('quantizes from the command line alone, prints a JSON report, and the result evaluates', async () => {
    const quantize = captureIO();
    const code = await main(['quantize', '--model', tinyClassifier(17), '--calib', images, ...preprocessing,
      '--bits', 'w4a4', '--method', 'rtn', '--calib-size', '16', '--out', out, '--json'], quantize.io);
    expect(quantize.err()).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(quantize.out()) as { bits: string; blocks: { name: string; sites: unknown[] }[]; calibrationImages: number };
    expect(report.bits).toBe('w4a4');
    expect(report.calibrationImages).toBe(16);
    expect(report.blocks.map((b) => b.name)).toEqual(['patch-embedding', 'block0', 'block1', 'head']);
    const session = await ort.InferenceSession.create(out);
    expect(session.inputNames).toEqual(['input']);
    await session.release();

    const evaluate = captureIO();
    const evalCode = await main(['evaluate', '--model', out, '--data', images, ...preprocessing, '--task', 'classification', '--json'], evaluate.io);
    expect(evaluate.err()).toBe('');
    expect(evalCode).toBe(0);
    expect(JSON.parse(evaluate.out()).metrics.images).toBe(24);
  });

  it('--export-form fastest keeps the faster form whose outputs match and says why', async () => {
    const quantize = captureIO();
    const code = await main(['quantize', '--model', tinyClassifier(17), '--calib', images, ...preprocessing,
      '--bits', 'w4a4', '--method', 'rtn', '--calib-size', '16', '--export-form', 'fastest', '--out', out, '--json'], quantize.io);
    expect(code).toBe(0);
    const report = JSON.parse(quantize.out()) as { exportForm: { form: string; reason: string; batch: number; msPerBatch: Record<string, number>; outputCosine: Record<string, number> } };
    expect(report.exportForm.form).toMatch(/^(ort|qdq)$/);
    expect(report.exportForm.batch).toBe(8);
    expect(Object.keys(report.exportForm.msPerBatch).sort()).toEqual(['fp32', 'ort', 'qdq']);
    expect(report.exportForm.outputCosine.qdq).toBeGreaterThanOrEqual(0.99);
    const { form, msPerBatch } = report.exportForm;
    expect(msPerBatch[form]).toBe(Math.min(msPerBatch.ort, msPerBatch.qdq));
    expect(report.exportForm.reason).toMatch(new RegExp(`^'${form}' is the fastest form whose outputs match`));
  });

  it('explains what is wrong with bad arguments in one line', async () => {
    const cases: [string[], RegExp][] = [
      [['--bits', 'w4a4', '--out', out], /--calib <dataset> is required/],
      [['--calib', images, '--bits', 'w9a9', '--out', out], /weight bits must be within 2\.\.8/],
      [['--calib', images, '--bits', 'w4a4', '--calib-size', '100', '--out', out], /has 24 images, fewer than the 100 requested/],
      [['--calib', images, '--layout', 'NHWC', '--bits', 'w4a4', '--calib-size', '8', '--out', out], /shape \[28, 28, 1\] per image but the model input 'input' takes \[1, 28, 28\]/],
    ];
    for (const [args, message] of cases) {
      const run = captureIO();
      const code = await main(['quantize', '--model', tinyClassifier(17), ...preprocessing, ...args], run.io);
      expect(code).toBe(1);
      expect(run.err()).toMatch(/^fimaq: error: /m);
      expect(run.err()).toMatch(message);
    }
  });
});
