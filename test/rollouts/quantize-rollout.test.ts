import { createRolloutsPlugin } from '../../plugins/rollouts';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { fimaqPlugin, quantize, registerTinyClassifier, waitForStatus } from '../jobs/support/jobs-harness';
import { readPolicy, rolloutAction, type RolloutView } from './support/rollout-fixtures';

jest.setTimeout(180_000);

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

    const listed = await gateway.graphql<{ rollouts: Array<RolloutView & { createdBy: string; guardrails: { minAgreement: number } }> }>(
      `{ rollouts(model: "tiny") { id status step trafficPercent candidate baseline reason createdBy guardrails { minAgreement } events { seq kind step trafficPercent actor reason figures { guardrail verdict estimate lower upper samples } } } }`,
    );
    expect(listed.errors).toBeUndefined();
    const [rollout] = listed.data!.rollouts;
    expect(rollout).toMatchObject({ status: 'running', step: 1, trafficPercent: 50, candidate: 'w4a4-rtn', baseline: 'fp32', createdBy: `fimaq-job:${job.id}`, guardrails: { minAgreement: 0.8 } });
    expect(await readPolicy(gateway, 'tiny')).toMatchObject({ routes: { fp32: 50, 'w4a4-rtn': 50 } });

    expect((await rolloutAction(gateway, 'abortRollout', rollout.id)).data!.abortRollout.status).toBe('aborted');
  });
});
