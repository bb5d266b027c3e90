import fs from 'node:fs';
import path from 'node:path';
import { buildSchema } from 'graphql';
import { createRolloutsPlugin } from '../../plugins/rollouts';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { fimaqPlugin, quantize, registerTinyClassifier } from '../jobs/support/jobs-harness';
import { addVariant, registerModel, setPolicy } from '../serving/support/serving-fixtures';

/** Every mutation of the published schema (kept current by the schema snapshot test). */
const MUTATIONS = Object.keys(
  buildSchema(fs.readFileSync(path.resolve(__dirname, '..', '..', 'schema', 'schema.graphql'), 'utf8')).getMutationType()!.getFields(),
);

/** The order the recipes run in: later ones use what earlier ones made. */
const ORDER = [
  'registerModel',
  'setModelLabels',
  'addVariant',
  'setTrafficPolicy',
  'startRollout',
  'pauseRollout',
  'resumeRollout',
  'abortRollout',
  'promoteRollout',
  'retireVariant', 'createApiToken', 'revokeApiToken', 'quantizeModel', 'cancelQuantizationJob'] as const;

/**
 * How to call each mutation successfully, and the audit action it must record. A new mutation fails the first test until it has a
 * recipe here (and writes its audit entry).
 */
function recipes(gateway: TestGateway): Record<(typeof ORDER)[number], { action: string; run: () => Promise<void> }> {
  const made: Record<string, string> = {};
  const ok = <T>(result: { data?: T; errors?: Array<{ message: string }> }): T => {
    if (result.errors) throw new Error(result.errors[0].message);
    return result.data!;
  };
  return {
    registerModel: { action: 'model.register', run: async () => void (made.base = await registerModel(gateway, 'shop', 'tiny-classifier.onnx')) },
    setModelLabels: {
      action: 'model.labels',
      run: async () => void ok(await gateway.graphql(`mutation($labels: [String!]!) { setModelLabels(model: "shop", labels: $labels) { name } }`, { labels: Array.from({ length: 10 }, (_, i) => `class-${i}`) })),
    },
    addVariant: { action: 'variant.add', run: async () => void (made.variant = await addVariant(gateway, 'shop', 'w4a4', 'tiny-classifier-q.onnx')) },
    setTrafficPolicy: { action: 'traffic_policy.set', run: async () => void ok(await setPolicy(gateway, 'shop', { routes: [{ variant: 'fp32', weight: 100 }] })) },
    startRollout: {
      action: 'rollout.started',
      run: async () => {
        made.rollout = ok(await gateway.graphql<{ startRollout: { id: string } }>(`mutation { startRollout(input: { model: "shop", candidate: "w4a4" }) { id } }`)).startRollout.id;
      },
    },
    pauseRollout: { action: 'rollout.paused', run: async () => void ok(await gateway.graphql(`mutation($id: ID!) { pauseRollout(id: $id) { id } }`, { id: made.rollout })) },
    resumeRollout: { action: 'rollout.resumed', run: async () => void ok(await gateway.graphql(`mutation($id: ID!) { resumeRollout(id: $id) { id } }`, { id: made.rollout })) },
    abortRollout: { action: 'rollout.aborted', run: async () => void ok(await gateway.graphql(`mutation($id: ID!) { abortRollout(id: $id) { id } }`, { id: made.rollout })) },
    promoteRollout: {
      action: 'rollout.promoted',
      run: async () => {
        const second = ok(await gateway.graphql<{ startRollout: { id: string } }>(`mutation { startRollout(input: { model: "shop", candidate: "w4a4" }) { id } }`)).startRollout.id;
        ok(await gateway.graphql(`mutation($id: ID!) { promoteRollout(id: $id) { id } }`, { id: second }));
      },
    },
    retireVariant: { action: 'variant.retired', run: async () => void ok(await gateway.graphql(`mutation($id: ID!) { retireVariant(id: $id) { id } }`, { id: made.base })) },
    createApiToken: {
      action: 'token.create',
      run: async () => {
        made.token = ok(await gateway.graphql<{ createApiToken: { info: { id: string } } }>(`mutation { createApiToken(name: "audited", role: viewer) { info { id } } }`)).createApiToken.info.id;
      },
    },
    revokeApiToken: { action: 'token.revoke', run: async () => void ok(await gateway.graphql(`mutation($id: ID!) { revokeApiToken(id: $id) { id } }`, { id: made.token })) },
    quantizeModel: {
      action: 'quantization_job.create',
      run: async () => {
        await registerTinyClassifier(gateway);
        made.job = ok(await quantize(gateway, {})).quantizeModel.id;
      },
    },
    cancelQuantizationJob: { action: 'quantization_job.cancelled', run: async () => void ok(await gateway.graphql(`mutation($id: ID!) { cancelQuantizationJob(id: $id) { id } }`, { id: made.job })) },
  };
}

describe('the audit log covers every mutation', () => {
  let gateway: TestGateway;
  let steps: ReturnType<typeof recipes>;

  beforeAll(async () => {
    // The controller's own decisions stay out of the way: it looks once an hour.
    gateway = await startTestGateway({ plugins: [createRolloutsPlugin({ config: { intervalMs: 3_600_000 } }), fimaqPlugin()] });
    steps = recipes(gateway);
  });
  afterAll(() => gateway?.stop());

  test('every mutation in the schema has a recipe here', () => {
    expect([...ORDER].sort()).toEqual([...MUTATIONS].sort());
  });

  test.each(ORDER)('%s writes its audit entry, by the caller', async (name) => {
    const step = steps[name];
    const before = (await gateway.services.audit.list({ limit: 1 }))[0]?.id ?? 0;
    await step.run();
    const written = (await gateway.services.audit.list({ limit: 100 })).filter((entry) => entry.id > before);
    expect(written.map((entry) => entry.action)).toContain(step.action);
    const entry = written.find((e) => e.action === step.action)!;
    expect(entry.actor).not.toMatch(/^$|anonymous/);
    expect(entry.subjectId).not.toBe('');
  });
});
