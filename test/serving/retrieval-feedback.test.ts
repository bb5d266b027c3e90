import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { averagePrecisionAtK } from '../../gateway/serving/feedback-scores';
import { FIXTURES, startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { addVariant, eventually, get, imagePixels, inferenceBody, png, post, registerModel, setPolicy, tensorValues } from './support/serving-fixtures';

const MODEL = 'finder';
const K = 5;
const GALLERY_SIZE = 24;
const CLASSES = 4;
const labelOf = (i: number) => `class-${i % CLASSES}`;

async function embeddingsOf(file: string, images: Uint8Array[]): Promise<number[][]> {
  const session = await ort.InferenceSession.create(path.join(FIXTURES, file));
  try {
    const data = Float32Array.from(images.flatMap((p) => tensorValues(p)));
    const { embedding } = await session.run({ input: new ort.Tensor('float32', data, [images.length, 1, 28, 28]) });
    const width = embedding.dims[1];
    const flat = Array.from(embedding.data as Float32Array);
    return images.map((_, i) => flat.slice(i * width, (i + 1) * width));
  } finally {
    await session.release();
  }
}

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const cosine = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0) / (norm(a) * norm(b));
const topIds = (query: number[], gallery: number[][]) =>
  gallery.map((row, i) => ({ id: `item-${i}`, score: cosine(row, query) })).sort((a, b) => b.score - a.score).slice(0, K).map((n) => n.id);
const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;

interface IntervalValue {
  estimate: number;
  lower: number | null;
  upper: number | null;
}
const expectContains = (interval: IntervalValue | null, estimate: number) => {
  expect(interval).not.toBeNull();
  expect(interval!.estimate).toBeCloseTo(estimate, 6);
  expect(interval!.lower!).toBeLessThanOrEqual(interval!.estimate + 1e-12);
  expect(interval!.upper!).toBeGreaterThanOrEqual(interval!.estimate - 1e-12);
};

const INTERVAL = '{ estimate lower upper }';
const METRICS = `query($model: String!, $from: DateTimeISO!) { modelMetrics(model: $model, from: $from) { variants { variantTag rankCorrelation mapAtK
  window { feedback correct compared accuracy ${INTERVAL}
    retrieval { k cosine ${INTERVAL} overlapAtK ${INTERVAL} rankCorrelation ${INTERVAL} recallAtK ${INTERVAL} mapAtK ${INTERVAL} } } } } }`;
const COMPARE = `query($model: String!, $from: DateTimeISO!) { compareVariants(model: $model, a: "fp32", b: "w4a4", from: $from) {
  accuracy { paired samples difference ${INTERVAL} }
  retrieval { k recallAtK { a ${INTERVAL} b ${INTERVAL} difference ${INTERVAL} paired samples pValue significant }
    mapAtK { a ${INTERVAL} b ${INTERVAL} difference ${INTERVAL} paired samples significant } } } }`;

interface RetrievalWindow {
  k: number;
  cosine: IntervalValue | null;
  overlapAtK: IntervalValue | null;
  rankCorrelation: IntervalValue | null;
  recallAtK: IntervalValue | null;
  mapAtK: IntervalValue | null;
}
interface Comparison {
  difference: IntervalValue | null;
  a: IntervalValue | null;
  paired: boolean;
  samples: number;
}
interface Series {
  variantTag: string;
  rankCorrelation: Array<number | null>;
  mapAtK: Array<number | null>;
  window: { feedback: number; correct: number; compared: number; accuracy: IntervalValue | null; retrieval: RetrievalWindow | null };
}

function retrievalFeedbackSuite(dialect: Dialect) {
  let gateway: TestGateway;
  const since = new Date(Date.now() - 60_000);
  const galleryImages = Array.from({ length: GALLERY_SIZE }, (_, i) => imagePixels(300 + i));
  const searched = Array.from({ length: 8 }, (_, i) => imagePixels(900 + i));
  const inferred = [imagePixels(950), imagePixels(951)];
  /** Per query, in order: the relevant ids its feedback names. */
  const relevant: Array<Set<string>> = [];
  const feedback = (body: Record<string, unknown>) => post(gateway, `/v2/models/${MODEL}/feedback`, body);
  const galleryIds = (predicate: (i: number) => boolean) => galleryImages.map((_, i) => i).filter(predicate).map((i) => `item-${i}`);

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect, env: { SERVING_RETRIEVAL_K: String(K) } });
    await registerModel(gateway, MODEL, 'tiny-embedder.onnx', 'RETRIEVAL');
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-embedder-q.onnx');
    await registerModel(gateway, 'bare', 'tiny-embedder.onnx', 'RETRIEVAL');
    await registerModel(gateway, 'classifier', 'tiny-classifier.onnx');
    const upload = await post(gateway, `/v2/models/${MODEL}/gallery`, {
      items: galleryImages.map((pixels, i) => ({ id: `item-${i}`, image: png(pixels).toString('base64'), label: labelOf(i) })),
    });
    expect(upload.status).toBe(200);
    expect((await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'w4a4', mirrorPercent: 100 }] })).errors).toBeUndefined();
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('a label that is not a non-empty string is refused at upload', async () => {
    const reply = await post(gateway, `/v2/models/${MODEL}/gallery`, { items: [{ id: 'x', image: png(imagePixels(1)).toString('base64'), label: 3 }] });
    expect(reply.status).toBe(400);
    expect(reply.json.error).toMatch(/items\[0\]: "label" must be a non-empty string/);
  });

  test('bad feedback is refused with a clear message and counts nothing', async () => {
    const query = await post(gateway, `/v2/models/${MODEL}/search?k=3`, png(searched[0]), { 'content-type': 'image/png' });
    expect(query.status).toBe(200);
    expect(query.json.results).toHaveLength(3);
    const id = query.json.id as string;
    const cases: Array<[Record<string, unknown>, RegExp, string?]> = [
      [{ id, relevant: [['item-1', 'nope', 'other']] }, /unknown gallery item id\(s\) of model finder: "nope", "other"/],
      [{ id, label: 'class-99' }, /no gallery item of model finder has label "class-99"/],
      [{ id, relevant: [['item-1'], ['item-2']] }, /had 1 row\(s\); give exactly that many lists of relevant ids \(got 2\)/],
      [{ id, labels: ['class-0', 'class-1'] }, /had 1 row\(s\); give exactly that many labels \(got 2\)/],
      [{ id, relevant: [[]] }, /relevant\[0\] is empty/],
      [{ id, relevant: 'item-1' }, /"relevant" must be an array with, per row of the request/],
      [{ id, relevant: [['item-1']] }, /model bare has no gallery/, 'bare'],
      [{ id, relevant: [['item-1']] }, /is a classifier: its feedback gives "label"/, 'classifier'],
    ];
    for (const [body, message, model] of cases) {
      const reply = await post(gateway, `/v2/models/${model ?? MODEL}/feedback`, body);
      expect({ status: reply.status, error: reply.json.error }).toEqual({ status: 400, error: expect.stringMatching(message) });
    }
    // The request still takes its (first valid) feedback: by label.
    relevant.push(new Set(galleryIds((i) => labelOf(i) === labelOf(0))));
    expect((await feedback({ id, label: labelOf(0) })).json).toEqual({ id, rows: 1, scored_variants: expect.arrayContaining(['fp32']) });
    expect((await feedback({ id, label: labelOf(0) })).status).toBe(409);
  });

  test('feedback by label and by ids scores recall@k and AP@k per variant and paired, in modelMetrics and compareVariants', async () => {
    for (let q = 1; q < searched.length; q++) {
      const query = await post(gateway, `/v2/models/${MODEL}/search`, png(searched[q]), { 'content-type': 'image/png' });
      expect(query.json.model_version).toBe('fp32');
      const id = query.json.id as string;
      if (q % 2 === 0) {
        relevant.push(new Set(galleryIds((i) => labelOf(i) === labelOf(q))));
        expect((await feedback({ id, label: labelOf(q) })).status).toBe(200);
      } else {
        const ids = galleryIds((i) => (i + q) % 5 === 0);
        relevant.push(new Set(ids));
        expect((await feedback({ id, relevant: [ids] })).status).toBe(200);
      }
    }
    // /infer on a retrieval model with a gallery keeps the neighbours too: two rows, one label each.
    const infer = await post(gateway, `/v2/models/${MODEL}/infer`, inferenceBody(inferred.map(tensorValues)));
    expect(infer.status).toBe(200);
    relevant.push(new Set(galleryIds((i) => labelOf(i) === labelOf(1))), new Set(galleryIds((i) => labelOf(i) === labelOf(2))));
    expect((await feedback({ id: infer.headers.get('x-request-id'), labels: [labelOf(1), labelOf(2)] })).json.rows).toBe(2);

    const queries = [...searched, ...inferred];
    const [fpGallery, qGallery, fpQueries, qQueries] = await Promise.all([
      embeddingsOf('tiny-embedder.onnx', galleryImages),
      embeddingsOf('tiny-embedder-q.onnx', galleryImages),
      embeddingsOf('tiny-embedder.onnx', queries),
      embeddingsOf('tiny-embedder-q.onnx', queries),
    ]);
    const fpTop = fpQueries.map((v) => topIds(v, fpGallery));
    const qTop = qQueries.map((v) => topIds(v, qGallery));
    const hits = (tops: string[][]) => tops.map((top, i) => top.some((id) => relevant[i].has(id)));
    const aps = (tops: string[][]) => tops.map((top, i) => averagePrecisionAtK(top, relevant[i]));
    const [fpHits, qHits, fpAps, qAps] = [hits(fpTop), hits(qTop), aps(fpTop), aps(qTop)];
    const n = queries.length;
    const paired = { both: 0, primaryOnly: 0, shadowOnly: 0, neither: 0 };
    fpHits.forEach((h, i) => (h && qHits[i] ? paired.both++ : h ? paired.primaryOnly++ : qHits[i] ? paired.shadowOnly++ : paired.neither++));

    let series!: Series[];
    await eventually(async () => {
      const result = await gateway.graphql<{ modelMetrics: { variants: Series[] } }>(METRICS, { model: MODEL, from: since.toISOString() });
      expect(result.errors).toBeUndefined();
      series = result.data!.modelMetrics.variants;
      expect(series.find((s) => s.variantTag === 'w4a4')!.window.feedback).toBe(n);
    });
    const fp32 = series.find((s) => s.variantTag === 'fp32')!;
    const w4a4 = series.find((s) => s.variantTag === 'w4a4')!;
    const count = (values: boolean[]) => values.filter(Boolean).length;
    expect(fp32.window).toMatchObject({ feedback: n, correct: count(fpHits) });
    expect(w4a4.window).toMatchObject({ feedback: n, correct: count(qHits), compared: n });
    expect(fp32.window.retrieval!.k).toBe(K);
    expectContains(fp32.window.retrieval!.recallAtK, count(fpHits) / n);
    expectContains(fp32.window.retrieval!.mapAtK, mean(fpAps));
    expectContains(w4a4.window.retrieval!.recallAtK, count(qHits) / n);
    expectContains(w4a4.window.retrieval!.mapAtK, mean(qAps));
    expect(fp32.window.retrieval!.cosine).toBeNull(); // it answered; only a shadow is compared
    expectContains(w4a4.window.retrieval!.cosine, mean(fpQueries.map((v, i) => cosine(v, qQueries[i]))));
    const overlaps = fpTop.map((top, i) => qTop[i].filter((id) => top.includes(id)).length / K);
    expectContains(w4a4.window.retrieval!.overlapAtK, mean(overlaps));
    expect(w4a4.window.retrieval!.rankCorrelation!.estimate).toBeGreaterThanOrEqual(-1);
    expect(w4a4.window.retrieval!.rankCorrelation!.estimate).toBeLessThanOrEqual(1);
    expect(w4a4.rankCorrelation.some((v) => v !== null)).toBe(true);
    expect(fp32.mapAtK.filter((v) => v !== null).length).toBeGreaterThan(0);

    const comparison = await gateway.graphql<{ compareVariants: { accuracy: Comparison; retrieval: { k: number; recallAtK: Comparison; mapAtK: Comparison } } }>(COMPARE, { model: MODEL, from: since.toISOString() });
    expect(comparison.errors).toBeUndefined();
    const { retrieval, accuracy } = comparison.data!.compareVariants;
    expect(retrieval.k).toBe(K);
    expect(retrieval.recallAtK).toMatchObject({ paired: true, samples: n });
    expect(accuracy).toMatchObject({ paired: true, samples: n });
    expectContains(retrieval.recallAtK.difference, (paired.shadowOnly - paired.primaryOnly) / n);
    expect(retrieval.mapAtK).toMatchObject({ paired: true, samples: n });
    expectContains(retrieval.mapAtK.difference, mean(qAps.map((ap, i) => ap - fpAps[i])));
    expectContains(retrieval.mapAtK.a, mean(fpAps));

    const scrape = (await get(gateway, '/metrics', null)).text;
    const sample = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(scrape)?.[1]);
    expect(sample(`gateway_feedback_total{model="${MODEL}",variant="w4a4",outcome="correct"}`)).toBe(count(qHits));
    expect(sample(`gateway_feedback_total{model="${MODEL}",variant="w4a4",outcome="incorrect"}`)).toBe(n - count(qHits));
    expect(sample(`gateway_retrieval_average_precision_count{model="${MODEL}",variant="fp32"}`)).toBe(n);
    expect(sample(`gateway_retrieval_average_precision_sum{model="${MODEL}",variant="fp32"}`)).toBeCloseTo(fpAps.reduce((s, v) => s + v, 0), 6);
    for (const [outcome, rows] of Object.entries(paired)) {
      expect(sample(`gateway_shadow_paired_feedback_total{model="${MODEL}",primary="fp32",shadow="w4a4",outcome="${outcome}"}`) || 0).toBe(rows);
    }
  });
}

describe('retrieval feedback: recall@k, mAP@k and neighbour figures with intervals (SQLite)', () => retrievalFeedbackSuite('sqlite'));
describeWithPostgres('retrieval feedback: recall@k, mAP@k and neighbour figures with intervals (PostgreSQL)', () => retrievalFeedbackSuite('postgres'));
