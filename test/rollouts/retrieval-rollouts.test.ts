import { createRolloutsPlugin } from '../../plugins/rollouts';
import { startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { addVariantBytes, png, post, registerModel, setPolicy } from '../serving/support/serving-fixtures';
import { DEMO_ENCODER, FMNIST_PREPROCESSING, quantizedEncoder } from './support/encoder-variants';
import { corruptedWeights, driveRollout, fashionMnistLabel, fashionMnistPixels, readPolicy, readRollout, startRollout } from './support/rollout-fixtures';

jest.setTimeout(240_000);

/**
 * Rollouts of the demo encoder's variants through the gateway, judged on the retrieval
 * guardrails: traffic is /search against a stored gallery of Fashion-MNIST train images labelled
 * with their class names, each variant shadowing the other, so every query compares the two by
 * cosine and overlap@10, and feedback naming the query's class scores both on recall@10.
 */
const plugin = () => createRolloutsPlugin({ config: { intervalMs: 100, leaseMs: 3000 } });
const GALLERY_SIZE = 200;
/** Default retrieval guardrails; latency off and a 5 % error rate, as in the classifier suites' short plans. */
const QUICK_GUARDRAILS = { maxLatencyRatio: null, maxErrorRate: 0.05 };
/** Judged on recall@10 from feedback (maxRecallDrop at its default) and errors only. */
const RECALL_ONLY = { ...QUICK_GUARDRAILS, minOverlapAtK: null, minCosine: null };
/**
 * /search with feedback by class, one query at a time: a pair needs the shadow to run, and the
 * shadow lane (niced, its queue half the primary's) drops what it cannot keep up with on a busy machine.
 */
const RECALL_TRAFFIC = { round: 25, maxRequests: 2500, route: 'search' as const, feedback: true, concurrency: 1 };
const quickSteps = (...percents: number[]) => percents.map((trafficPercent) => ({ trafficPercent, minRequests: 100, minDuration: 0 }));

async function encoder(gateway: TestGateway, name: string, candidates: Record<string, Buffer>): Promise<void> {
  await registerModel(gateway, name, DEMO_ENCODER, 'RETRIEVAL', FMNIST_PREPROCESSING);
  for (const [tag, bytes] of Object.entries(candidates)) await addVariantBytes(gateway, name, tag, bytes);
  const items = Array.from({ length: GALLERY_SIZE }, (_, i) => ({ id: `train-${i}`, image: png(fashionMnistPixels('train', i)).toString('base64'), label: fashionMnistLabel('train', i) }));
  const upload = await post(gateway, `/v2/models/${name}/gallery`, { items });
  if (upload.status !== 200) throw new Error(`gallery upload answered ${upload.status}: ${upload.raw.toString()}`);
  // Each candidate embeds the gallery now (a /search routed to it waits for that): otherwise the
  // rollout's first shadow would, and the shadows queued behind it would be dropped, not compared.
  for (const tag of Object.keys(candidates)) {
    await routeTo(gateway, name, tag);
    if ((await searchTop(gateway, name, 0)).status !== 200) throw new Error(`${tag} could not search the gallery`);
  }
  await routeTo(gateway, name, 'fp32');
}

async function routeTo(gateway: TestGateway, name: string, tag: string): Promise<void> {
  const set = await setPolicy(gateway, name, { routes: [{ variant: tag, weight: 1 }] });
  if (set.errors) throw new Error(set.errors[0].message);
}

/** The 3 nearest gallery items of test image i, as a set (the variants may order close ones differently). */
async function searchTop(gateway: TestGateway, name: string, i: number): Promise<{ status: number; ids: string[] }> {
  const reply = await post(gateway, `/v2/models/${name}/search?k=3`, png(fashionMnistPixels('t10k', i)), { 'content-type': 'image/png' });
  return { status: reply.status, ids: ((reply.json.results as Array<{ id: string }> | undefined) ?? []).map((r) => r.id).sort() };
}

function suite(dialect: Dialect) {
  let gateway: TestGateway;
  let w8a8: Buffer;

  beforeAll(async () => {
    w8a8 = await quantizedEncoder('w8a8');
    gateway = await startTestGateway({ dialect, plugins: [plugin()] });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('an encoder with corrupted weights is rolled back in its first step on overlap and cosine (default plan)', async () => {
    await encoder(gateway, 'emb-bad', { broken: corruptedWeights(DEMO_ENCODER) });
    const started = await startRollout(gateway, { model: 'emb-bad', candidate: 'broken' });
    expect(started.errors).toBeUndefined();
    const { id } = started.data!.startRollout;

    const { rollout } = await driveRollout(gateway, 'emb-bad', id, ['rolled_back', 'promoted'], { round: 20, maxRequests: 1000, route: 'search' });
    expect([rollout.status, rollout.step]).toEqual(['rolled_back', 1]);
    const figures = rollout.events.at(-1)!.figures;
    const byName = Object.fromEntries(figures.map((f) => [f.guardrail, f]));
    expect(byName.overlap).toMatchObject({ verdict: 'violated' });
    // Noise weights share about a quarter of the 10 neighbours on this gallery (README), far below 0.5.
    expect(byName.overlap.estimate).toBeLessThan(0.5);
    expect(byName.cosine).toMatchObject({ verdict: 'violated' });
    expect(byName.agreement).toMatchObject({ verdict: 'inapplicable' });
    expect(byName.accuracy).toMatchObject({ verdict: 'inapplicable' });
    expect(rollout.reason).toMatch(/overlap/);
    expect(await readPolicy(gateway, 'emb-bad')).toMatchObject({ routes: { fp32: 1 }, shadows: [] });
  });

  test('an encoder that loses recall@10 is rolled back on maxRecallDrop alone, judged on feedback by class', async () => {
    // Noise of scale 1 keeps a same-class neighbour for fewer queries than FP32 (about 0.87 vs 0.97 on this gallery).
    await encoder(gateway, 'emb-recall', { lossy: corruptedWeights(DEMO_ENCODER, 1) });
    const started = await startRollout(gateway, { model: 'emb-recall', candidate: 'lossy', guardrails: RECALL_ONLY });
    expect(started.errors).toBeUndefined();
    const { id } = started.data!.startRollout;

    const { rollout, sent } = await driveRollout(gateway, 'emb-recall', id, ['rolled_back', 'promoted'], RECALL_TRAFFIC);
    expect([rollout.status, rollout.step]).toEqual(['rolled_back', 1]);
    const figures = Object.fromEntries(rollout.events.at(-1)!.figures.map((f) => [f.guardrail, f]));
    // Switched off, overlap and cosine are not judged at all; accuracy is the classifiers' figure.
    expect([figures.overlap, figures.cosine]).toEqual([undefined, undefined]);
    expect(figures.accuracy).toMatchObject({ verdict: 'inapplicable' });
    expect(figures.recall).toMatchObject({ verdict: 'violated', threshold: -0.01 });
    // Paired queries: both variants answered (one as the shadow) and feedback named the class.
    expect(figures.recall.samples).toBeGreaterThanOrEqual(30);
    expect(figures.recall.samples).toBeLessThanOrEqual(sent);
    expect(figures.recall.estimate).toBeLessThan(-0.03);
    expect(figures.recall.upper).toBeLessThan(-0.01);
    expect(figures.recall.pValue).toBeLessThan(0.01);
    // The pairs behind it: they add up to the samples, and the baseline alone was right more often.
    const pairs = figures.recall.pairs!;
    expect(pairs.both + pairs.candidateOnly + pairs.baselineOnly + pairs.neither).toBe(figures.recall.samples);
    expect(pairs.baselineOnly).toBeGreaterThan(pairs.candidateOnly);
    expect(rollout.reason).toMatch(/guardrail violated at step 1 \(5 %\): recall -0\.\d+ \[.*\] vs -0\.01 on \d+/);
    expect(await readPolicy(gateway, 'emb-recall')).toMatchObject({ routes: { fp32: 1 }, shadows: [] });
  });

  test('the rtn W8A8 encoder is promoted to 100 % on overlap and cosine', async () => {
    await encoder(gateway, 'emb-w8a8', { w8a8 });
    const started = await startRollout(gateway, { model: 'emb-w8a8', candidate: 'w8a8', steps: quickSteps(10, 50, 100), guardrails: QUICK_GUARDRAILS });
    expect(started.errors).toBeUndefined();
    const { id } = started.data!.startRollout;

    const { rollout } = await driveRollout(gateway, 'emb-w8a8', id, ['promoted', 'rolled_back'], { round: 50, maxRequests: 3000, route: 'search' });
    expect([rollout.status, rollout.reason]).toEqual(['promoted', expect.any(String)]);
    expect(rollout.events.map((e) => `${e.kind}@${e.trafficPercent}`)).toEqual(['started@10', 'advanced@50', 'advanced@100', 'promoted@100']);
    const figures = Object.fromEntries(rollout.events[1].figures.map((f) => [f.guardrail, f]));
    expect(figures.overlap).toMatchObject({ verdict: 'holds' });
    expect(figures.overlap.estimate).toBeGreaterThan(0.85);
    expect(figures.cosine).toMatchObject({ verdict: 'holds' });
    expect(figures.cosine.estimate).toBeGreaterThan(0.99);
    expect(await readPolicy(gateway, 'emb-w8a8')).toMatchObject({ routes: { w8a8: 1 }, shadows: [] });
    expect((await searchTop(gateway, 'emb-w8a8', 5)).status).toBe(200);
  });

  test('the rtn W8A8 encoder is promoted on maxRecallDrop alone once paired feedback shows its recall@10 within a point', async () => {
    await encoder(gateway, 'emb-recall-w8a8', { w8a8 });
    // One step at 100 %: the baseline shadows every query, and the few hundred paired queries a
    // hold needs (recall@10 the same on nearly all of them) are gathered once, not per step. Its
    // 300 requests keep the step from passing on the error rate alone before feedback is counted
    // (recall is judged only once the step has paired queries).
    const started = await startRollout(gateway, { model: 'emb-recall-w8a8', candidate: 'w8a8', steps: [{ trafficPercent: 100, minRequests: 300, minDuration: 0 }], guardrails: RECALL_ONLY });
    expect(started.errors).toBeUndefined();
    const { id } = started.data!.startRollout;

    const { rollout } = await driveRollout(gateway, 'emb-recall-w8a8', id, ['promoted', 'rolled_back'], RECALL_TRAFFIC);
    expect(rollout.status).toBe('promoted');
    const recall = rollout.events.at(-1)!.figures.find((f) => f.guardrail === 'recall')!;
    expect(recall).toMatchObject({ verdict: 'holds', threshold: -0.01 });
    expect(recall.lower).toBeGreaterThanOrEqual(-0.01);
    expect(Math.abs(recall.estimate!)).toBeLessThan(0.01);
    expect(rollout.reason).toMatch(/step 1 \(100 %\) passed: recall /);
  });

  test('a gateway restarted mid-rollout resumes its step, and the gallery is still there', async () => {
    await encoder(gateway, 'emb-restart', { w8a8 });
    const started = await startRollout(gateway, { model: 'emb-restart', candidate: 'w8a8', steps: quickSteps(10, 50, 100), guardrails: QUICK_GUARDRAILS });
    const { id } = started.data!.startRollout;
    const before = await driveRollout(gateway, 'emb-restart', id, ['promoted', 'rolled_back'], { round: 50, maxRequests: 2000, stopAtStep: 2, route: 'search' });
    expect([before.rollout.status, before.rollout.step]).toEqual(['running', 2]);
    const answer = await searchTop(gateway, 'emb-restart', 7);

    await gateway.halt();
    gateway = await startTestGateway({ dialect, plugins: [plugin()], storage: gateway.storage });
    expect(await readRollout(gateway, id)).toMatchObject({ status: 'running', step: 2, trafficPercent: 50 });
    expect(await readPolicy(gateway, 'emb-restart')).toMatchObject({ routes: { fp32: 50, w8a8: 50 } });
    const gallery = await gateway.graphql<{ gallery: { size: number } }>(`{ gallery(model: "emb-restart") { size } }`);
    expect(gallery.data?.gallery.size).toBe(GALLERY_SIZE);
    // Either variant may answer; both find the same nearest train images for this query.
    expect(await searchTop(gateway, 'emb-restart', 7)).toEqual(answer);

    const after = await driveRollout(gateway, 'emb-restart', id, ['promoted', 'rolled_back'], { round: 50, maxRequests: 3000, route: 'search' });
    expect(after.rollout.status).toBe('promoted');
    expect(after.rollout.events.map((e) => `${e.kind}@${e.trafficPercent}`)).toEqual(['started@10', 'advanced@50', 'advanced@100', 'promoted@100']);
    expect(after.rollout.events.at(-1)!.figures.find((f) => f.guardrail === 'overlap')).toMatchObject({ verdict: 'holds' });
  });
}

describe('canary rollouts of an encoder (SQLite)', () => suite('sqlite'));
describeWithPostgres('canary rollouts of an encoder (PostgreSQL)', () => suite('postgres'));
