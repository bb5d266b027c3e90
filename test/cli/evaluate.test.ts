import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseModelCard, type ModelCard } from '../../workers/common/model-card';
import { openDataset } from '../../workers/data';
import { OnnxImageModel } from '../../workers/eval';
import { fimaq, type CliRun } from './support/run-fimaq';
import { FMNIST_PRE, FULL_DATASET_DIR, MODELS_DIR, SAMPLE_DIR, idxBuffer, pattern, tempDir } from '../data/fixtures';

const model = (name: string): string => join(MODELS_DIR, `${name}.onnx`);
const card = (name: string): ModelCard => {
  const path = join(MODELS_DIR, `${name}.card.json`);
  return parseModelCard(readFileSync(path, 'utf8'), path);
};
const metric = (c: ModelCard, key: string): number => Number(c.metrics?.[key]);

/** A user error: exit 1 and exactly one line on stderr, no stack trace. */
function expectOneLineError(run: CliRun, message: RegExp): void {
  expect(run.code).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(message);
  expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
}

// ONNX Runtime and PyTorch differ in the last float bits; that can flip a borderline image or two
// of the 1000 (0.1 point each).
const SAMPLE_TOLERANCE = 0.003;

describe('fimaq evaluate on the committed models and sample', () => {
  it.each(['vit-fmnist-cls-op17', 'vit-fmnist-cls-op13'])('%s: top-1 on the sample matches the card', async (name) => {
    const run = await fimaq('evaluate', '--model', model(name), '--data', SAMPLE_DIR, '--json');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { metrics: { task: string; images: number; top1: number; top5: number } };
    expect(report.metrics.task).toBe('classification');
    expect(report.metrics.images).toBe(1000);
    expect(Math.abs(report.metrics.top1 - metric(card(name), 'sample1000Top1'))).toBeLessThanOrEqual(SAMPLE_TOLERANCE);
    expect(report.metrics.top5).toBeGreaterThan(report.metrics.top1);
  });

  it('vit-fmnist-emb-op17: retrieval on the sample matches the card', async () => {
    const name = 'vit-fmnist-emb-op17';
    const run = await fimaq('evaluate', '--model', model(name), '--data', SAMPLE_DIR, '--gallery', SAMPLE_DIR, '--json');
    expect(run.code).toBe(0);
    const { metrics } = JSON.parse(run.stdout) as { metrics: { task: string; queries: number; gallery: number; recallAt1: number; recallAt5: number; mAP: number } };
    expect([metrics.task, metrics.queries, metrics.gallery]).toEqual(['retrieval', 1000, 1024]);
    const c = card(name);
    expect(Math.abs(metrics.recallAt1 - metric(c, 'sampleRecallAt1'))).toBeLessThanOrEqual(0.005);
    expect(Math.abs(metrics.recallAt5 - metric(c, 'sampleRecallAt5'))).toBeLessThanOrEqual(0.005);
    expect(Math.abs(metrics.mAP - metric(c, 'sampleMAP'))).toBeLessThanOrEqual(0.005);
  });

  it('ONNX Runtime reproduces the PyTorch outputs recorded at export', async () => {
    const references = JSON.parse(readFileSync(join(__dirname, '../fixtures/demo-models/reference-outputs.json'), 'utf8')) as {
      models: Record<string, number[][]>;
    };
    const ds = await openDataset({ path: SAMPLE_DIR, split: 'test' }, FMNIST_PRE);
    const batch = (await ds.batches({ batchSize: 8, limit: 8 }).next()).value;
    for (const [file, expected] of Object.entries(references.models)) {
      const m = await OnnxImageModel.load(join(MODELS_DIR, file));
      const out = await m.run(batch, 'input');
      await m.close();
      expect(out.dims).toEqual([8, expected[0].length]);
      const maxDiff = Math.max(...expected.flat().map((v, i) => Math.abs(v - out.data[i])));
      expect(maxDiff).toBeLessThan(1e-3);
    }
  });

  it('prints a readable report without --json, and no progress bar when stderr is not a terminal', async () => {
    const run = await fimaq('evaluate', '--model', model('vit-fmnist-cls-op17'), '--data', SAMPLE_DIR, '--limit', '100', '--batch-size', '32');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/images {3}100\ntop-1 {4}\d+\.\d\d%\ntop-5 {4}\d+\.\d\d%/);
    expect(run.stderr).toBe('');
  });

  it('documents the dataset formats in --help', async () => {
    const run = await fimaq('evaluate', '--help');
    expect(run.code).toBe(0);
    for (const text of ['IDX directory', 'image folder', 'NPY file', 'images.labels.npy', '--gallery-split']) expect(run.stdout).toContain(text);
  });
});

describe('fimaq evaluate on bad input', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());
  const cls = (): string => model('vit-fmnist-cls-op17');

  it('names a missing model or dataset', async () => {
    expectOneLineError(await fimaq('evaluate', '--model', join(tmp.dir, 'm.onnx'), '--data', SAMPLE_DIR), /^fimaq: error: model not found: .*m\.onnx$/m);
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', join(tmp.dir, 'none')), /^fimaq: error: dataset not found: .*none$/m);
  });

  it('rejects a file that is not an ONNX model', async () => {
    const path = join(tmp.dir, 'junk.onnx');
    writeFileSync(path, 'not a model');
    expectOneLineError(await fimaq('evaluate', '--model', path, '--data', SAMPLE_DIR, '--task', 'classification', '--mean', '0.5', '--std', '0.5'), /cannot load ONNX model .*junk\.onnx/);
  });

  it('rejects truncated or corrupt IDX data', async () => {
    writeFileSync(join(tmp.dir, 't10k-images-idx3-ubyte.gz'), gzipSync(idxBuffer([10, 28, 28], pattern(7840)).subarray(0, 5000)));
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', tmp.dir), /truncated IDX file/);
    writeFileSync(join(tmp.dir, 't10k-images-idx3-ubyte.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]));
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', tmp.dir), /corrupt gzip data/);
  });

  it('rejects a model whose input does not fit the preprocessing', async () => {
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', SAMPLE_DIR, '--size', '32'), /input "input" has shape \[batch, 1, 28, 28\] but the preprocessing makes \[N, 1, 32, 32\]/);
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', SAMPLE_DIR, '--channels', '3'), /has shape \[batch, 1, 28, 28\] but the preprocessing makes \[N, 3, 28, 28\]/);
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', SAMPLE_DIR, '--input-name', 'pixels'), /model has no input named "pixels" \(inputs: input\)/);
  });

  it('rejects images of the wrong size for the model', async () => {
    writeFileSync(join(tmp.dir, 't10k-images-idx3-ubyte'), idxBuffer([2, 32, 32], pattern(2048)));
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', tmp.dir), /image is 32x32 \(WxH\) but the model expects 28x28/);
  });

  it('asks for the preprocessing when a model has no card, and infers a classifier\'s task, saying so', async () => {
    const bare = join(tmp.dir, 'bare.onnx');
    writeFileSync(bare, readFileSync(cls()));
    expectOneLineError(await fimaq('evaluate', '--model', bare, '--data', SAMPLE_DIR), /preprocessing unknown: mean, std/);
    const normalized = ['--mean', '0.286', '--std', '0.353', '--limit', '64'];
    const inferred = await fimaq('evaluate', '--model', bare, '--data', SAMPLE_DIR, ...normalized, '--json');
    expect(inferred.code).toBe(0);
    const report = JSON.parse(inferred.stdout) as { task: { task: string; source: string; reason: string }; metrics: { task: string; images: number } };
    expect(report.task).toEqual({ task: 'classification', source: 'inferred', reason: 'output "logits" is [N, 10], one score per class of the 10 the labels span' });
    expect(report.metrics).toMatchObject({ task: 'classification', images: 64 });
    const readable = await fimaq('evaluate', '--model', bare, '--data', SAMPLE_DIR, ...normalized);
    expect(readable.stdout).toContain('task     classification (inferred: output "logits" is [N, 10], one score per class of the 10 the labels span; no model card)');
    const chosen = await fimaq('evaluate', '--model', bare, '--data', SAMPLE_DIR, ...normalized, '--task', 'classification', '--json');
    expect(JSON.parse(chosen.stdout).task).toEqual({ task: 'classification', source: 'option' });
  });

  it('asks for --task when an output without a card is not one score per class', async () => {
    const bare = join(tmp.dir, 'encoder.onnx');
    writeFileSync(bare, readFileSync(model('vit-fmnist-emb-op17')));
    expectOneLineError(
      await fimaq('evaluate', '--model', bare, '--data', SAMPLE_DIR, '--mean', '0.286', '--std', '0.353'),
      /^fimaq: error: no model card next to the model and the task cannot be inferred: output "embedding" is \[N, 64\] but the labels span 10 classes; pass --task classification\|retrieval$/m,
    );
    const run = await fimaq('evaluate', '--model', bare, '--data', SAMPLE_DIR, '--mean', '0.286', '--std', '0.353', '--task', 'retrieval', '--limit', '64', '--json');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).metrics.task).toBe('retrieval');
  });

  it('reports unlabeled datasets and bad flag values on one line', async () => {
    writeFileSync(join(tmp.dir, 't10k-images-idx3-ubyte'), idxBuffer([2, 28, 28], pattern(1568)));
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', tmp.dir), /has no labels; evaluation needs labeled images/);
    expectOneLineError(await fimaq('evaluate', '--model', cls(), '--data', SAMPLE_DIR, '--batch-size', '0'), /argument '0' is invalid. expected a positive integer/);
  });
});

describe('fimaq evaluate on the full Fashion-MNIST test split', () => {
  const available = existsSync(FULL_DATASET_DIR);
  if (!available && process.env.REQUIRE_SERVICES !== '1') {
    it.skip(`skipped: ${FULL_DATASET_DIR} is missing (install the Debian package dataset-fashion-mnist, or set REQUIRE_SERVICES=1 to fail instead)`, () => undefined);
    return;
  }

  it('reproduces the PyTorch test accuracy of the classifier within 0.1 point', async () => {
    expect(existsSync(FULL_DATASET_DIR)).toBe(true);
    const name = 'vit-fmnist-cls-op17';
    const run = await fimaq('evaluate', '--model', model(name), '--data', FULL_DATASET_DIR, '--batch-size', '256', '--json');
    expect(run.code).toBe(0);
    const { metrics } = JSON.parse(run.stdout) as { metrics: { images: number; top1: number } };
    expect(metrics.images).toBe(10000);
    expect(Math.abs(metrics.top1 - metric(card(name), 'top1'))).toBeLessThanOrEqual(0.001);
  }, 300_000);
});
