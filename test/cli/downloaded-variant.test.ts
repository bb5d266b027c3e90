import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../workers/cli/fimaq';
import { parseModelCard } from '../../workers/common/model-card';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';
import { MODELS_DIR, SAMPLE_DIR, tempDir } from '../data/fixtures';

/**
 * The pair a user downloads from the gateway (a variant's ONNX file and its card, saved side by
 * side) is all `fimaq evaluate` needs besides `--data`.
 */
describe('fimaq evaluate on a variant downloaded from the gateway', () => {
  let gateway: TestGateway;
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    gateway = await startTestGateway();
    tmp = tempDir();
  });
  afterAll(async () => {
    await gateway?.stop();
    tmp?.cleanup();
  });

  const download = async (urlPath: string): Promise<Buffer> => {
    const response = await fetch(`${gateway.url}${urlPath}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(response.status).toBe(200);
    return Buffer.from(await response.arrayBuffer());
  };

  test('register the demo classifier, download model.onnx and model.card.json, evaluate with --data only', async () => {
    const demoModel = path.join(MODELS_DIR, 'vit-fmnist-cls-op17.onnx');
    const registered = await gateway.graphql<{ registerModel: { variant: { id: string; artifactSha256: string } } }>(
      `mutation($input: RegisterModelInput!) { registerModel(input: $input) { variant { id artifactSha256 } } }`,
      { input: { name: 'fmnist-vit', localPath: demoModel } },
    );
    expect(registered.errors).toBeUndefined();
    const { id, artifactSha256 } = registered.data!.registerModel.variant;

    const modelFile = path.join(tmp.dir, 'model.onnx');
    fs.writeFileSync(modelFile, await download(`/v1/artifacts/${artifactSha256}`));
    fs.writeFileSync(path.join(tmp.dir, 'model.card.json'), await download(`/v1/variants/${id}/card`));

    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on('data', (d: Buffer) => out.push(d));
    stderr.on('data', (d: Buffer) => err.push(d));
    const code = await main(['evaluate', '--model', modelFile, '--data', SAMPLE_DIR, '--json'], { stdout, stderr });
    expect(Buffer.concat(err).toString()).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(Buffer.concat(out).toString()) as { metrics: { task: string; images: number; top1: number } };
    const demoCard = parseModelCard(fs.readFileSync(demoModel.replace(/\.onnx$/, '.card.json'), 'utf8'), 'demo card');
    expect(report.metrics).toMatchObject({ task: 'classification', images: 1000 });
    // The same tolerance as evaluate.test.ts: ONNX Runtime and PyTorch differ in the last bits.
    expect(Math.abs(report.metrics.top1 - Number(demoCard.metrics?.sample1000Top1))).toBeLessThanOrEqual(0.003);
  }, 120_000);
});
