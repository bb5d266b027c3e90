import { startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { addVariant, eventually, imagePixels, inferenceBody, post, registerModel, setPolicy, tensorValues } from '../serving/support/serving-fixtures';

/**
 * Feedback on a request one variant answered and another shadowed is a pair: the shadow's rollup
 * row counts both right / only the primary / only the shadow / neither (migration 0004).
 */
function suite(dialect: Dialect) {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('paired outcomes per shadow add up to the feedback rows and agree with each variant’s accuracy', async () => {
    await registerModel(gateway, 'pairs', 'tiny-classifier.onnx');
    await addVariant(gateway, 'pairs', 'w4a4', 'tiny-classifier-q.onnx');
    expect((await setPolicy(gateway, 'pairs', { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'w4a4', mirrorPercent: 100 }] })).errors).toBeUndefined();
    const { serving, registry } = gateway.services;
    const model = await registry.getModel('pairs');
    const variants = new Map((await registry.listVariants(model.id)).map((v) => [v.tag, v.id]));

    const rows = 60;
    for (let i = 0; i < rows; i++) {
      const reply = await post(gateway, '/v2/models/pairs/infer', inferenceBody([tensorValues(imagePixels(i))]));
      const requestId = reply.headers.get('x-request-id')!;
      // Shadows finish after the answer; feedback may arrive before or after, both are paired.
      const feedback = await post(gateway, '/v2/models/pairs/feedback', { id: requestId, label: i % 10 });
      expect(feedback.status).toBe(200);
    }
    await eventually(async () => {
      await serving.flushRollups();
      const totals = await serving.rollups.query(model.id, new Date(Date.now() - 3_600_000));
      const sum = (tag: string) => totals.filter((r) => r.variantId === variants.get(tag)).reduce(
        (acc, r) => ({ feedback: acc.feedback + r.feedback, correct: acc.correct + r.correct, both: acc.both + r.pairedBoth, primaryOnly: acc.primaryOnly + r.pairedPrimaryOnly, shadowOnly: acc.shadowOnly + r.pairedShadowOnly, neither: acc.neither + r.pairedNeither }),
        { feedback: 0, correct: 0, both: 0, primaryOnly: 0, shadowOnly: 0, neither: 0 },
      );
      const primary = sum('fp32');
      const shadow = sum('w4a4');
      expect(primary.feedback).toBe(rows);
      // A busy machine may drop shadow runs (their lane only takes idle CPU); every one that ran is paired.
      expect(shadow.feedback).toBeGreaterThan(0);
      expect(shadow.both + shadow.primaryOnly + shadow.shadowOnly + shadow.neither).toBe(shadow.feedback);
      expect(shadow.both + shadow.shadowOnly).toBe(shadow.correct);
      expect(shadow.both + shadow.primaryOnly).toBeLessThanOrEqual(primary.correct);
      // The answering variant is no one's shadow here: its row has no pairs.
      expect(primary.both + primary.primaryOnly + primary.shadowOnly + primary.neither).toBe(0);
    });
  });
}

describe('paired outcomes (SQLite)', () => suite('sqlite'));
describeWithPostgres('paired outcomes (PostgreSQL)', () => suite('postgres'));
