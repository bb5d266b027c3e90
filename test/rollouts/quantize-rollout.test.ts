import { createRolloutsPlugin } from '../../plugins/rollouts';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { fimaqPlugin, quantize, registerTinyClassifier, registerTinyModel, waitForStatus } from '../jobs/support/jobs-harness';
import { png, post } from '../serving/support/serving-fixtures';
import { DEMO_ENCODER } from './support/encoder-variants';
import { driveRollout, fashionMnistPixels, readPolicy, rolloutAction, type RolloutView } from './support/rollout-fixtures';

jest.setTimeout(180_000);

const ROLLOUTS_FIELDS = 'id status step trafficPercent candidate baseline reason createdBy guardrails { minAgreement minOverlapAtK } events { seq kind step trafficPercent actor reason figures { guardrail verdict estimate lower upper samples } }';
type ListedRollout = RolloutView & { createdBy: string; guardrails: { minAgreement: number; minOverlapAtK: number } };

async function rolloutsOf(gateway: TestGateway, model: string): Promise<ListedRollout[]> {
  const listed = await gateway.graphql<{ rollouts: ListedRollout[] }>(`query($model: String!) { rollouts(model: $model) { ${ROLLOUTS_FIELDS} } }`, { model });
  expect(listed.errors).toBeUndefined();
  return listed.data!.rollouts;
}

describe('quantizeModel(rollout:) starts a rollout of the new variant when its job succeeds (embedded, SQLite)', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway({ plugins: [fimaqPlugin(), createRolloutsPlugin({ config: { intervalMs: 200, leaseMs: 3000 } })] });
    await registerTinyClassifier(gateway);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('an RTN W4A4 job with a rollout plan: the variant is rolled out against its parent with that plan', async () => {
    const steps = [{ trafficPercent: 50, minRequests: 100000, minDuration: 3600 }, { trafficPercent: 100, minRequests: 100000, minDuration: 3600 }];
    const queued = await quantize(gateway, { bits: 'W4A4', rollout: { steps, guardrails: { minAgreement: 0.8 } } });
    expect(queued.errors).toBeUndefined();
    const job = await waitForStatus(gateway, queued.data!.quantizeModel.id, ['succeeded', 'failed'], 120_000);
    expect(job.status).toBe('succeeded');

    const [rollout] = await rolloutsOf(gateway, 'tiny');
    expect(rollout).toMatchObject({ status: 'running', step: 1, trafficPercent: 50, candidate: 'w4a4-rtn', baseline: 'fp32', createdBy: `fimaq-job:${job.id}`, guardrails: { minAgreement: 0.8 } });
    expect(await readPolicy(gateway, 'tiny')).toMatchObject({ routes: { fp32: 50, 'w4a4-rtn': 50 } });

    expect((await rolloutAction(gateway, 'abortRollout', rollout.id)).data!.abortRollout.status).toBe('aborted');
  });

  test('the demo encoder quantized W4A4 (rtn) is rolled out against its parent on the retrieval guardrails and promoted', async () => {
    await registerTinyModel(gateway, 'encoder', 'RETRIEVAL', DEMO_ENCODER);
    const items = Array.from({ length: 200 }, (_, i) => ({ id: `train-${i}`, image: png(fashionMnistPixels('train', i)).toString('base64') }));
    expect((await post(gateway, '/v2/models/encoder/gallery', { items })).status).toBe(200);
    const steps = [50, 100].map((trafficPercent) => ({ trafficPercent, minRequests: 100, minDuration: 0 }));
    const queued = await quantize(gateway, { model: 'encoder', bits: 'W4A4', rollout: { steps, guardrails: { maxLatencyRatio: null, maxErrorRate: 0.05 } } });
    expect(queued.errors).toBeUndefined();
    const job = await waitForStatus(gateway, queued.data!.quantizeModel.id, ['succeeded', 'failed'], 120_000);
    expect(job.status).toBe('succeeded');

    const [started] = await rolloutsOf(gateway, 'encoder');
    expect(started).toMatchObject({ status: 'running', candidate: 'w4a4-rtn', baseline: 'fp32', createdBy: `fimaq-job:${job.id}`, guardrails: { minOverlapAtK: 0.5 } });
    const { rollout } = await driveRollout(gateway, 'encoder', started.id, ['promoted', 'rolled_back'], { round: 50, maxRequests: 3000, route: 'search' });
    expect([rollout.status, rollout.reason]).toEqual(['promoted', expect.any(String)]);
    const overlap = rollout.events.at(-1)!.figures.find((f) => f.guardrail === 'overlap')!;
    expect(overlap.verdict).toBe('holds');
    // W4A4 shares fewer neighbours with FP32 than W8A8 does (README: 0.82 on a 200-image gallery).
    expect(overlap.estimate).toBeLessThan(0.95);
    expect(await readPolicy(gateway, 'encoder')).toMatchObject({ routes: { 'w4a4-rtn': 1 } });
  });
});
