import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { FIXTURES, startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { addVariant, eventually, get, imagePixels, inferenceBody, LABELS, png, post, registerModel, setPolicy, tensorValues } from './support/serving-fixtures';
import { variantFigures, type VariantFigures } from './support/variant-figures';

const MODEL = 'shop';
const INFER = `/v2/models/${MODEL}/infer`;

const softmax = (logits: number[]) => {
  const max = Math.max(...logits);
  const exp = logits.map((v) => Math.exp(v - max));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / sum);
};
const argmax = (values: number[]) => values.indexOf(Math.max(...values));

/** The scheduling niceness of every thread of this process (Linux: field 19 of /proc/self/task/<tid>/stat). */
function threadNiceValues(): number[] {
  return fs.readdirSync('/proc/self/task').map((tid) => {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

async function logitsOf(file: string, images: Uint8Array[]): Promise<number[][]> {
  const session = await ort.InferenceSession.create(path.join(FIXTURES, file));
  try {
    const data = Float32Array.from(images.flatMap((p) => tensorValues(p)));
    const { logits } = await session.run({ input: new ort.Tensor('float32', data, [images.length, 1, 28, 28]) });
    const flat = Array.from(logits.data as Float32Array);
    return images.map((_, i) => flat.slice(i * 10, (i + 1) * 10));
  } finally {
    await session.release();
  }
}

function trafficSuite(dialect: Dialect) {
  let gateway: TestGateway;
  const body = () => inferenceBody([tensorValues(imagePixels(7))]);

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-classifier-q.onnx');
    await addVariant(gateway, MODEL, 'broken', 'fails-at-run.onnx');
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('the default policy sends everything to the original variant', async () => {
    const policy = await gateway.graphql<{ trafficPolicy: { version: number; routes: Array<{ variantTag: string; weight: number }> } }>(
      `{ trafficPolicy(model: "${MODEL}") { version routes { variantTag weight } } }`,
    );
    expect(policy.data!.trafficPolicy).toEqual({ version: 0, routes: [{ variantTag: 'fp32', weight: 1 }] });
    const reply = await post(gateway, INFER, body());
    expect(reply.headers.get('x-variant')).toBe('fp32');
  });

  test('A/B weights split traffic; the routing key keeps a caller on one variant', async () => {
    const set = await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 50 }, { variant: 'w4a4', weight: 50 }] });
    expect(set.data!.setTrafficPolicy.version).toBe(1);
    const seen = new Set<string>();
    // 24 random 50/50 choices all landing on one side would happen once in 2^23 runs.
    for (let i = 0; i < 24; i++) {
      const reply = await post(gateway, INFER, body());
      expect(reply.status).toBe(200);
      expect(reply.json.model_version).toBe(reply.headers.get('x-variant'));
      seen.add(reply.headers.get('x-variant') as string);
    }
    expect([...seen].sort()).toEqual(['fp32', 'w4a4']);

    for (const key of ['alice', 'bob', 'carol']) {
      const variants = new Set<string>();
      for (let i = 0; i < 8; i++) variants.add((await post(gateway, INFER, body(), { 'x-routing-key': key })).headers.get('x-variant') as string);
      expect(variants.size).toBe(1);
    }

    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 0 }, { variant: 'w4a4', weight: 3 }] });
    for (let i = 0; i < 5; i++) expect((await post(gateway, INFER, body())).headers.get('x-variant')).toBe('w4a4');
  });

  test('a policy change under load drops nothing and applies to every later request', async () => {
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }] });
    let changed = false;
    const client = async () => {
      const statuses: number[] = [];
      while (!changed) statuses.push((await post(gateway, INFER, body())).status);
      return statuses;
    };
    const clients = Array.from({ length: 8 }, client);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const set = await setPolicy(gateway, MODEL, { routes: [{ variant: 'w4a4', weight: 1 }] });
    expect(set.errors).toBeUndefined();
    changed = true;
    const statuses = (await Promise.all(clients)).flat();
    expect(statuses.length).toBeGreaterThan(8);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const after = await Promise.all(Array.from({ length: 8 }, () => post(gateway, INFER, body())));
    expect(after.map((r) => r.headers.get('x-variant'))).toEqual(new Array(8).fill('w4a4'));
  });

  test('shadow traffic: the caller gets the primary, the shadow is compared, feedback scores both', async () => {
    const since = new Date();
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'w4a4', mirrorPercent: 100 }] });
    const images = Array.from({ length: 20 }, (_, i) => imagePixels(100 + i));
    const requestIds: string[] = [];
    for (const pixels of images) {
      const reply = await post(gateway, `/v2/models/${MODEL}/classify`, png(pixels), { 'content-type': 'image/png' });
      expect(reply.status).toBe(200);
      expect(reply.json.model_version).toBe('fp32');
      requestIds.push(reply.headers.get('x-request-id') as string);
    }

    const fp = await logitsOf('tiny-classifier.onnx', images);
    const q = await logitsOf('tiny-classifier-q.onnx', images);
    const pairs = fp.map((logits, i) => [softmax(logits), softmax(q[i])]);
    const agreement = pairs.filter(([p, r]) => argmax(p) === argmax(r)).length / pairs.length;
    const meanKl = pairs.reduce((sum, [p, r]) => sum + p.reduce((s, pi, c) => s + pi * Math.log(pi / r[c]), 0), 0) / pairs.length;
    const meanDelta = pairs.reduce((sum, [p, r]) => sum + Math.abs(p[argmax(p)] - r[argmax(p)]), 0) / pairs.length;

    await eventually(async () => {
      const shadow = (await variantFigures(gateway, MODEL, since)).get('w4a4');
      expect(shadow?.compared).toBe(20);
    });
    const shadow = (await variantFigures(gateway, MODEL, since)).get('w4a4') as VariantFigures;
    expect(shadow.shadowRequests).toBe(20);
    expect(shadow.top1Agreement).toBeCloseTo(agreement, 6);
    expect(shadow.meanKlDivergence).toBeCloseTo(meanKl, 4);
    expect(shadow.meanTop1ProbabilityDelta).toBeCloseTo(meanDelta, 4);
    expect(meanKl).toBeGreaterThan(0);

    // Ground truth: say the primary was right on the first 15 images and wrong on the last 5.
    const truth = fp.map((logits, i) => (i < 15 ? argmax(logits) : (argmax(logits) + 1) % 10));
    for (let i = 0; i < images.length; i++) {
      const label = i % 2 === 0 ? LABELS[truth[i]] : truth[i];
      const reply = await post(gateway, `/v2/models/${MODEL}/feedback`, { id: requestIds[i], label });
      expect(reply.status).toBe(200);
      expect(reply.json).toEqual({ id: requestIds[i], rows: 1, scored_variants: ['fp32', 'w4a4'] });
    }
    const expectedShadowCorrect = q.filter((logits, i) => argmax(logits) === truth[i]).length;
    const after = await variantFigures(gateway, MODEL, since);
    expect(after.get('fp32')).toMatchObject({ feedback: 20, correct: 15 });
    expect(after.get('w4a4')).toMatchObject({ feedback: 20, correct: expectedShadowCorrect });

    const metrics = (await get(gateway, '/metrics', null)).text;
    // Mirrored requests ran in a session of their own, on threads that yield the CPU to answers.
    expect(metrics).toContain(`gateway_queue_depth{model="${MODEL}",variant="w4a4",role="shadow"} 0`);
    if (process.platform === 'linux') expect(threadNiceValues()).toContain(19);
    expect(metrics).toContain(`gateway_feedback_total{model="${MODEL}",variant="fp32",outcome="correct"} 15`);
    expect(metrics).toContain(`gateway_shadow_comparisons_total{model="${MODEL}",primary="fp32",shadow="w4a4"} 20`);
    expect(metrics).toMatch(/gateway_shadow_kl_divergence_bucket\{le="0.01",model="shop",primary="fp32",shadow="w4a4"\}/);

    const feedbackErrors: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ id: 'never-seen', label: 1 }, 404, /no recent prediction with request id never-seen/],
      [{ id: requestIds[0], label: 1 }, 409, /already has feedback/],
      [{ id: requestIds[0], label: 'hat' }, 400, /unknown label "hat"/],
      [{ id: requestIds[0], labels: [1, 2] }, 400, /had 1 row\(s\); give exactly that many labels/],
      [{ label: 1 }, 400, /feedback is \{"id"/],
    ];
    for (const [payload, status, message] of feedbackErrors) {
      // A fresh request for the count check, so the duplicate check does not mask it.
      if (payload.labels) payload.id = (await post(gateway, INFER, body())).headers.get('x-request-id');
      const reply = await post(gateway, `/v2/models/${MODEL}/feedback`, payload);
      expect([reply.status, reply.json.error]).toEqual([status, expect.stringMatching(message)]);
    }
  });

  test('a failing shadow never fails the primary; its errors are counted', async () => {
    const since = new Date();
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'broken', mirrorPercent: 100 }] });
    for (let i = 0; i < 5; i++) expect((await post(gateway, INFER, body())).status).toBe(200);
    await eventually(async () => expect((await variantFigures(gateway, MODEL, since)).get('broken')).toMatchObject({ shadowRequests: 5, shadowErrors: 5 }));
  });

  test('dynamic batching merges concurrent requests into one run with the same answers', async () => {
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], batching: { maxBatchSize: 4, maxQueueDelayMs: 1000 } });
    const images = [1, 2, 3, 4].map((seed) => imagePixels(seed));
    const before = (await get(gateway, '/metrics', null)).text;
    const replies = await Promise.all(images.map((pixels) => post(gateway, INFER, inferenceBody([tensorValues(pixels)]))));
    const expected = await logitsOf('tiny-classifier.onnx', images);
    replies.forEach((reply, i) => {
      expect(reply.status).toBe(200);
      (reply.json.outputs as Array<{ data: number[] }>)[0].data.forEach((v, c) => expect(v).toBeCloseTo(expected[i][c], 4));
    });
    const sample = (text: string, name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name}{model="${MODEL}",variant="fp32"}`))?.split(' ').pop() ?? 0);
    const after = (await get(gateway, '/metrics', null)).text;
    expect(sample(after, 'gateway_batch_rows_count') - sample(before, 'gateway_batch_rows_count')).toBe(1);
    expect(sample(after, 'gateway_batch_rows_sum') - sample(before, 'gateway_batch_rows_sum')).toBe(4);
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }] });
  });

  test('a retired variant leaves the rotation without failed requests', async () => {
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }, { variant: 'w4a4', weight: 1 }] });
    const variants = await gateway.services.registry.listVariants((await gateway.services.registry.getModel(MODEL)).id);
    const w4a4 = variants.find((v) => v.tag === 'w4a4')!;
    await gateway.graphql(`mutation($id: ID!) { retireVariant(id: $id) { status } }`, { id: w4a4.id });
    const replies = await Promise.all(Array.from({ length: 12 }, () => post(gateway, INFER, body())));
    expect(replies.map((r) => `${r.status} ${r.headers.get('x-variant')}`)).toEqual(new Array(12).fill('200 fp32'));
    expect((await post(gateway, `/v2/models/${MODEL}/versions/w4a4/infer`, body())).status).toBe(404);
  });

  test.each([
    ['an unknown variant', { routes: [{ variant: 'nope', weight: 1 }] }, 'BAD_USER_INPUT', /has no variant "nope"/],
    ['no positive weight', { routes: [{ variant: 'fp32', weight: 0 }] }, 'BAD_USER_INPUT', /at least one route needs a positive weight/],
    ['a retired variant', { routes: [{ variant: 'w4a4', weight: 1 }] }, 'BAD_USER_INPUT', /w4a4 is retired/],
    ['a mirror share over 100', { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'broken', mirrorPercent: 150 }] }, 'BAD_USER_INPUT', /Argument Validation Error/],
    ['a batch size over the limit', { routes: [{ variant: 'fp32', weight: 1 }], batching: { maxBatchSize: 5000 } }, 'BAD_USER_INPUT', /Argument Validation Error/],
  ])('setTrafficPolicy refuses %s', async (_name, policy, code, message) => {
    const before = await gateway.graphql<{ trafficPolicy: { version: number } }>(`{ trafficPolicy(model: "${MODEL}") { version } }`);
    const result = await setPolicy(gateway, MODEL, policy);
    expect(result.errors?.[0].extensions?.code).toBe(code);
    expect(result.errors?.[0].message).toMatch(message);
    const after = await gateway.graphql<{ trafficPolicy: { version: number } }>(`{ trafficPolicy(model: "${MODEL}") { version } }`);
    expect(after.data!.trafficPolicy.version).toBe(before.data!.trafficPolicy.version);
  });

  test('a full queue answers 429 with Retry-After instead of queueing without bound', async () => {
    const small = await startTestGateway({ dialect, env: { SERVING_QUEUE_LIMIT: '1' } });
    try {
      await registerModel(small, MODEL, 'tiny-classifier.onnx');
      // The first request waits up to a second for batch mates, holding the only queue place.
      await setPolicy(small, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], batching: { maxBatchSize: 64, maxQueueDelayMs: 1000 } });
      await post(small, INFER, body());
      const replies = await Promise.all(Array.from({ length: 4 }, () => post(small, INFER, body())));
      const refused = replies.filter((r) => r.status === 429);
      expect(replies.filter((r) => r.status === 200)).toHaveLength(1);
      expect(refused).toHaveLength(3);
      for (const reply of refused) {
        expect(Number(reply.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(reply.json.error).toMatch(/requests waiting \(the limit\); retry after/);
      }
    } finally {
      await small.stop();
    }
  });
}

describe('traffic policies, shadows and feedback (SQLite)', () => trafficSuite('sqlite'));
describeWithPostgres('traffic policies, shadows and feedback (PostgreSQL)', () => trafficSuite('postgres'));
