import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readModelCard } from '../../workers/common/model-card';
import { fimaq } from './support/run-fimaq';
import { FMNIST_PRE, MODELS_DIR, SAMPLE_DIR, tempDir } from '../data/fixtures';

describe('fimaq quantize writes a card that fimaq evaluate reads', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const quantize = (model: string, out: string, ...extra: string[]): ReturnType<typeof fimaq> =>
    fimaq('quantize', '--model', model, '--calib', SAMPLE_DIR, '--bits', 'w4a4', '--method', 'rtn', '--calib-size', '16', '--out', out, '--json', ...extra);

  it('a model without a card: the task is inferred and said, the card carries it and the preprocessing', async () => {
    const bare = join(tmp.dir, 'exported.onnx');
    writeFileSync(bare, readFileSync(join(MODELS_DIR, 'vit-fmnist-cls-op17.onnx')));
    const out = join(tmp.dir, 'q.onnx');
    const run = await quantize(bare, out, '--mean', '0.286', '--std', '0.353');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).task).toMatchObject({ task: 'classification', source: 'inferred' });

    expect(readModelCard(out)).toEqual({
      name: 'exported-rtn-w4a4',
      task: 'CLASSIFICATION',
      preprocessing: { ...FMNIST_PRE, mean: [0.286], std: [0.353] },
      parent: 'exported',
      quantization: { method: 'rtn', bits: 'w4a4' },
    });
    // The case: evaluating the quantizer's own output with nothing but the data.
    const evaluated = await fimaq('evaluate', '--model', out, '--data', SAMPLE_DIR, '--limit', '100', '--json');
    expect(evaluated.stderr).toBe('');
    expect(evaluated.code).toBe(0);
    const report = JSON.parse(evaluated.stdout) as { task: { source: string }; metrics: { task: string; images: number; top1: number } };
    expect(report.task).toEqual({ task: 'classification', source: 'card' });
    expect(report.metrics).toMatchObject({ task: 'classification', images: 100 });
    expect(report.metrics.top1).toBeGreaterThan(0.7);
  });

  it('a model with a card: the source\'s description and labels, not its figures', async () => {
    const out = join(tmp.dir, 'q.onnx');
    const source = readModelCard(join(MODELS_DIR, 'vit-fmnist-cls-op17.onnx'));
    expect((await quantize(join(MODELS_DIR, 'vit-fmnist-cls-op17.onnx'), out)).code).toBe(0);
    const card = readModelCard(out);
    expect(card).toMatchObject({ name: `${source?.name}-rtn-w4a4`, task: 'CLASSIFICATION', labels: source?.labels, architecture: source?.architecture, parent: source?.name });
    expect(card?.metrics).toBeUndefined();
  });

  it('asks for --task rather than guess, and writes nothing', async () => {
    const bare = join(tmp.dir, 'encoder.onnx');
    writeFileSync(bare, readFileSync(join(MODELS_DIR, 'vit-fmnist-emb-op17.onnx')));
    const out = join(tmp.dir, 'q.onnx');
    const run = await quantize(bare, out, '--mean', '0.286', '--std', '0.353');
    expect(run.code).toBe(1);
    // The file declares the embedding's width symbolically (onnxruntime's metadata resolves it to 64).
    expect(run.stderr).toMatch(/task cannot be inferred: output "embedding" is \[N, Divembedding_dim_1\], not \[N, classes\]; pass --task classification\|retrieval/);
    expect(existsSync(out)).toBe(false);
    const retrieval = await quantize(bare, out, '--mean', '0.286', '--std', '0.353', '--task', 'retrieval', '--reference', 'prototypes');
    expect(retrieval.code).toBe(0);
    expect(readModelCard(out)?.task).toBe('RETRIEVAL');
  });
});
