import { randomUUID } from 'node:crypto';
import { startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { histogramQuantile } from '../../gateway/statistics/histogram-quantiles';
import { columnsOfCounts, emptyCounts, LATENCY_BUCKET_COLUMNS, ROLLUP_LATENCY_BUCKETS_MS } from '../../gateway/serving/metric-rollups';
import { addVariant, imagePixels, LABELS, png, post, registerModel, setPolicy } from '../serving/support/serving-fixtures';

const MODEL = 'shop';

const SERIES = `query($model: String!, $from: DateTimeISO!, $to: DateTimeISO, $step: Int!) {
  modelMetrics(model: $model, from: $from, to: $to, step: $step) {
    steps stepSeconds
    variants { variantTag precision requests shadowRequests shadowDropped compared agreement latencyP95Ms computeP50Ms accuracy
      window { requests errors errorRate shadowRequests compared feedback correct
        latencyMs { p50 p95 p99 } computeMs { p50 p95 p99 } agreement { estimate lower upper } accuracy { estimate lower upper } } } } }`;

interface Window {
  requests: number;
  errors: number;
  errorRate: number | null;
  shadowRequests: number;
  compared: number;
  feedback: number;
  correct: number;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  computeMs: { p50: number | null; p95: number | null; p99: number | null };
  agreement: { estimate: number; lower: number; upper: number } | null;
  accuracy: { estimate: number; lower: number; upper: number } | null;
}
interface Series {
  variantTag: string;
  precision: string;
  requests: number[];
  shadowRequests: number[];
  shadowDropped: number[];
  compared: number[];
  agreement: Array<number | null>;
  latencyP95Ms: Array<number | null>;
  computeP50Ms: Array<number | null>;
  accuracy: Array<number | null>;
  window: Window;
}

function metricsSuite(dialect: Dialect) {
  let gateway: TestGateway;
  const start = new Date(Date.now() - 60_000);

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-classifier-q.onnx');
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'w4a4', mirrorPercent: 100 }] });
    // 12 answered requests mirrored to w4a4, each with feedback naming fp32's answer right on the first 9.
    for (let i = 0; i < 12; i++) {
      const reply = await post(gateway, `/v2/models/${MODEL}/classify?top=1`, png(imagePixels(i)), { 'content-type': 'image/png' });
      expect(reply.status).toBe(200);
      const predicted = LABELS.indexOf((reply.json.predictions as Array<{ label: string }>)[0].label);
      const label = LABELS[i < 9 ? predicted : (predicted + 1) % LABELS.length];
      await waitFor(async () => (await post(gateway, `/v2/models/${MODEL}/feedback`, { id: reply.headers.get('x-request-id'), label })).status === 200);
    }
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  async function waitFor(check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('condition never held');
  }

  async function series(variables: Record<string, unknown>): Promise<{ steps: string[]; variants: Series[] }> {
    const result = await gateway.graphql<{ modelMetrics: { steps: string[]; variants: Series[] } }>(SERIES, { model: MODEL, step: 60, ...variables });
    if (result.errors) throw new Error(result.errors[0].message);
    return result.data!.modelMetrics;
  }

  test('series per variant and step from traffic through the gateway', async () => {
    let answer!: { steps: string[]; variants: Series[] };
    await waitFor(async () => {
      answer = await series({ from: start.toISOString(), to: new Date(Date.now() + 60_000).toISOString() });
      return answer.variants.find((v) => v.variantTag === 'w4a4')?.window.compared === 12;
    });
    expect(answer.steps.length).toBeGreaterThanOrEqual(2);
    const fp32 = answer.variants.find((v) => v.variantTag === 'fp32')!;
    const w4a4 = answer.variants.find((v) => v.variantTag === 'w4a4')!;
    expect(fp32.window).toMatchObject({ requests: 12, errors: 0, errorRate: 0, feedback: 12, correct: 9 });
    expect(fp32.requests.reduce((a, b) => a + b, 0)).toBe(12);
    expect(fp32.requests).toHaveLength(answer.steps.length);
    expect(fp32.window.latencyMs.p50).toBeGreaterThan(0);
    expect(fp32.window.latencyMs.p99).toBeGreaterThanOrEqual(fp32.window.latencyMs.p95!);
    expect(fp32.window.computeMs.p50).toBeGreaterThan(0);
    expect(fp32.window.accuracy!.estimate).toBeCloseTo(0.75, 10);
    expect(fp32.window.accuracy!.lower).toBeLessThan(0.75);
    expect(fp32.window.accuracy!.upper).toBeGreaterThan(0.75);

    expect(w4a4.precision).toBe('W4A4');
    expect(w4a4.window).toMatchObject({ requests: 0, shadowRequests: 12, compared: 12, feedback: 12 });
    expect(w4a4.window.latencyMs.p50).toBeNull(); // a pure shadow answers nobody
    expect(w4a4.window.computeMs.p50).toBeGreaterThan(0);
    expect(w4a4.window.agreement!.estimate).toBeGreaterThanOrEqual(0);
    expect(w4a4.shadowRequests.reduce((a, b) => a + b, 0)).toBe(12);
    expect(w4a4.shadowDropped.every((n) => n === 0)).toBe(true);
    const busy = w4a4.compared.findIndex((n) => n > 0);
    expect(w4a4.agreement[busy]).not.toBeNull();
    expect(w4a4.agreement[w4a4.compared.findIndex((n) => n === 0)] ?? null).toBeNull();
  });

  test('percentiles come from the summed buckets of every minute and instance, not from averaged percentiles', async () => {
    const { services } = gateway;
    const model = await services.registry.getModel(MODEL);
    const variant = (await services.registry.listVariants(model.id)).find((v) => v.tag === 'w4a4')!;
    const base = Date.UTC(2020, 0, 1, 0, 0);
    // Minute 1: 90 requests at ≤ 1 ms; minute 2 on another replica: 10 requests in (500, 1000] ms.
    const buckets = (bucket: number, n: number) => LATENCY_BUCKET_COLUMNS.map((_, i) => (i === bucket ? n : 0));
    const rows: Array<[number, string, number[]]> = [
      [base, randomUUID(), buckets(0, 90)],
      [base + 60_000, randomUUID(), buckets(9, 10)],
    ];
    for (const [minute, instance, counts] of rows) {
      const total = counts.reduce((a, b) => a + b, 0);
      await services.database.db
        .insertInto('serving_rollups')
        .values({
          minute: new Date(minute).toISOString(), model_id: model.id, variant_id: variant.id, instance_id: instance,
          ...columnsOfCounts({ ...emptyCounts(), requests: total, shadowDropped: 1, latencyBuckets: counts, computeBuckets: counts }),
        })
        .execute();
    }
    const answer = await series({ from: new Date(base).toISOString(), to: new Date(base + 5 * 60_000).toISOString(), step: 300 });
    const w4a4 = answer.variants.find((v) => v.variantTag === 'w4a4')!;
    const summed = { bounds: ROLLUP_LATENCY_BUCKETS_MS, counts: LATENCY_BUCKET_COLUMNS.map((_, i) => (i === 0 ? 90 : i === 9 ? 10 : 0)) };
    expect(answer.steps).toEqual([new Date(base).toISOString()]);
    expect(w4a4.requests).toEqual([100]);
    expect(w4a4.shadowDropped).toEqual([2]);
    expect(w4a4.window.latencyMs.p95).toBeCloseTo(histogramQuantile(summed, 0.95), 10);
    expect(w4a4.window.latencyMs.p50).toBeCloseTo(histogramQuantile(summed, 0.5), 10);
    expect(w4a4.window.latencyMs.p50).toBeLessThanOrEqual(1);
    expect(w4a4.latencyP95Ms).toEqual([w4a4.window.latencyMs.p95]);
    expect(w4a4.window.computeMs.p95).toBeCloseTo(histogramQuantile(summed, 0.95), 10);

    const perMinute = await series({ from: new Date(base).toISOString(), to: new Date(base + 3 * 60_000).toISOString(), step: 60 });
    expect(perMinute.variants.find((v) => v.variantTag === 'w4a4')!.requests).toEqual([90, 10, 0]);
  });

  test('compareVariants: accuracy, error rate and latency differences with their intervals', async () => {
    const result = await gateway.graphql<{ compareVariants: Record<string, unknown> & { latency: Array<{ measure: string; quantile: number; ratio: { estimate: number } | null; significant: boolean }> } }>(
      `query($from: DateTimeISO!) { compareVariants(model: "${MODEL}", a: "fp32", b: "w4a4", from: $from) {
        a b confidence
        accuracy { a { estimate } b { estimate } difference { estimate lower upper } paired samples pValue significant }
        errorRate { difference { estimate } significant }
        latency { measure quantile ratio { estimate lower upper } significant }
        aWindow { requests } bWindow { shadowRequests } } }`,
      { from: start.toISOString() },
    );
    expect(result.errors).toBeUndefined();
    const comparison = result.data!.compareVariants;
    expect(comparison).toMatchObject({ a: 'fp32', b: 'w4a4', confidence: 0.95, aWindow: { requests: 12 }, bWindow: { shadowRequests: 12 } });
    const accuracy = comparison.accuracy as { a: { estimate: number }; b: { estimate: number }; difference: { estimate: number; lower: number; upper: number }; samples: number; paired: boolean };
    expect(accuracy.a.estimate).toBeCloseTo(0.75, 10);
    expect(accuracy.difference.estimate).toBeCloseTo(accuracy.b.estimate - accuracy.a.estimate, 10);
    expect(accuracy.difference.lower).toBeLessThanOrEqual(accuracy.difference.estimate);
    // w4a4 shadowed every request fp32 answered: the 12 feedback rows are pairs.
    expect(accuracy).toMatchObject({ paired: true, samples: 12 });
    expect((comparison.accuracy as { pValue: number }).pValue).toBeGreaterThan(0);
    // w4a4 only shadowed: no end-to-end latency to compare, compute on both sides.
    expect(comparison.latency.map((l) => `${l.measure}@${l.quantile}`)).toEqual(['endToEnd@0.5', 'endToEnd@0.95', 'endToEnd@0.99', 'compute@0.5', 'compute@0.95', 'compute@0.99']);
    expect(comparison.latency.filter((l) => l.measure === 'endToEnd').every((l) => l.ratio === null && !l.significant)).toBe(true);
    expect(comparison.latency.filter((l) => l.measure === 'compute').every((l) => l.ratio !== null && l.ratio.estimate > 0)).toBe(true);
  });

  test('bad windows, steps and variants are refused with BAD_USER_INPUT', async () => {
    const from = start.toISOString();
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      [SERIES, { model: MODEL, from, step: 30 }, /whole number of minutes/],
      [SERIES, { model: MODEL, from, to: new Date(start.getTime() - 3600_000).toISOString(), step: 60 }, /must be after from/],
      [SERIES, { model: MODEL, from: new Date(Date.now() - 3 * 86400_000).toISOString(), step: 60 }, /at most 1440/],
      [`query($from: DateTimeISO!) { compareVariants(model: "${MODEL}", a: "fp32", b: "nope", from: $from) { a } }`, { from }, /has no variant "nope"/],
      [`query($from: DateTimeISO!) { compareVariants(model: "${MODEL}", a: "fp32", b: "fp32", from: $from) { a } }`, { from }, /two different variants/],
    ];
    for (const [query, variables, message] of cases) {
      const result = await gateway.graphql(query, variables);
      expect(result.errors?.[0]).toMatchObject({ message: expect.stringMatching(message), extensions: { code: 'BAD_USER_INPUT' } });
    }
    const unknown = await gateway.graphql(SERIES, { model: 'missing', from, step: 60 });
    expect(unknown.errors?.[0].extensions?.code).toBe('NOT_FOUND');
  });
}

describe('modelMetrics and compareVariants on SQLite', () => metricsSuite('sqlite'));
describeWithPostgres('modelMetrics and compareVariants on PostgreSQL', () => metricsSuite('postgres'));
