/**
 * The demo encoder quantized FIMA-Q W4A4 and rolled out on the default guardrails, the way the
 * README tells a user (`npm run bench:encoder-rollout`, after `npm run build`):
 *   1. starts the built gateway (`node dist/gateway/main.js`, what `npm run serve` runs) on a
 *      fresh DATA_DIR and reads the admin token it prints on stderr (or uses GATEWAY_URL and
 *      GATEWAY_TOKEN for a gateway already running);
 *   2. registers deploy/demo/models/vit-fmnist-emb-op17.onnx (labels and preprocessing from its
 *      card) and uploads a gallery of BENCH_GALLERY Fashion-MNIST train images labelled with
 *      their class names;
 *   3. quantizeModel with the defaults (FIMAQ, W4A4, iters, calibSize), calibration from the
 *      train split, and a rollout of short steps (BENCH_STEPS %, each BENCH_MIN_REQUESTS requests
 *      and BENCH_MIN_DURATION s) with the default guardrails;
 *   4. once the job succeeded, /search queries (test images) each followed by /feedback with its
 *      class, until the rollout ends, printing each controller decision with its figures;
 *   5. a table of FP32 and the W4A4 variant over the rollout's window (modelMetrics,
 *      compareVariants): overlap@10, cosine, rank correlation, recall@10 and mAP@10 with their
 *      intervals, the rollout's outcome and the job's duration.
 * Environment: BENCH_DATA (IDX directory, default /usr/share/datasets/fashion-mnist, else the
 * committed sample), BENCH_GALLERY (1000), BENCH_STEPS (10,50,100), BENCH_MIN_REQUESTS (300),
 * BENCH_MIN_DURATION (20), BENCH_RATE (queries per second, 30; 0: as fast as BENCH_CONCURRENCY
 * clients go, which leaves the niced shadow lane no idle CPU), BENCH_MAX_QUERIES (20000),
 * BENCH_CONCURRENCY (2), BENCH_PORT (18080), BENCH_GUARDRAILS (JSON overrides, e.g.
 * '{"maxLatencyRatio": null}'; unset: the defaults).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { PNG } from 'pngjs';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const FULL_DATA = '/usr/share/datasets/fashion-mnist';
const DATA = process.env.BENCH_DATA ?? (fs.existsSync(FULL_DATA) ? FULL_DATA : path.join(REPO_ROOT, 'deploy', 'demo', 'data', 'fashion-mnist'));
const GALLERY = Number(process.env.BENCH_GALLERY ?? 1000);
const STEPS = (process.env.BENCH_STEPS ?? '10,50,100').split(',').map(Number);
const MIN_REQUESTS = Number(process.env.BENCH_MIN_REQUESTS ?? 300);
const MIN_DURATION = Number(process.env.BENCH_MIN_DURATION ?? 20);
const MAX_QUERIES = Number(process.env.BENCH_MAX_QUERIES ?? 20000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 2);
const RATE = Number(process.env.BENCH_RATE ?? 30);
const GUARDRAILS = process.env.BENCH_GUARDRAILS ? (JSON.parse(process.env.BENCH_GUARDRAILS) as Record<string, number | null>) : undefined;
const PORT = Number(process.env.BENCH_PORT ?? 18080);
const MODEL = 'fmnist-emb';
const FINISHED = ['promoted', 'rolled_back', 'aborted'];

const out = (line = '') => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const f = (x: number | null | undefined, digits = 4) => (x === null || x === undefined ? '–' : x.toFixed(digits));

interface Interval { estimate: number; lower: number | null; upper: number | null }
const interval = (i: Interval | null | undefined) => (i ? `${f(i.estimate)} [${f(i.lower)}, ${f(i.upper)}]` : '–');

/** An IDX split's images (28×28 gray) and labels. */
function idx(split: 'train' | 't10k', count: number): { images: Uint8Array[]; labels: Uint8Array } {
  const read = (file: string) => zlib.gunzipSync(fs.readFileSync(path.join(DATA, file)));
  const raw = read(`${split}-images-idx3-ubyte.gz`);
  const n = Math.min(count, raw.readUInt32BE(4));
  return { images: Array.from({ length: n }, (_, i) => raw.subarray(16 + i * 784, 16 + (i + 1) * 784)), labels: read(`${split}-labels-idx1-ubyte.gz`).subarray(8, 8 + n) };
}

function png(pixels: Uint8Array): Buffer {
  const image = new PNG({ width: 28, height: 28, colorType: 0 });
  pixels.forEach((v, p) => image.data.set([v, v, v, 255], 4 * p));
  return PNG.sync.write(image, { colorType: 0 });
}

/** The gateway under test: its URL, admin token and, when this script started it, the process. */
interface Gateway { url: string; token: string; process?: ChildProcess; log?: string }

/** Starts the built gateway as `npm run serve` does, on a fresh DATA_DIR; the token is the one it prints. */
async function serve(): Promise<Gateway> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'encoder-rollout-'));
  const log = path.join(dataDir, 'gateway.log');
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist', 'gateway', 'main.js')], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(PORT), DATA_DIR: dataDir, GATEWAY_ADMIN_TOKEN: '', DATABASE_URL: '', NATS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logStream = fs.createWriteStream(log);
  let stderr = '';
  let token: string | undefined;
  let ready = false;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    token ??= /Store it now[^\n]*\n\s*\n\s*(\S+)/.exec(stderr)?.[1];
    logStream.write(chunk);
  });
  child.stdout.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('gateway ready at')) ready = true;
    logStream.write(chunk);
  });
  const exited = new Promise<never>((_, reject) => child.on('exit', (code) => reject(new Error(`gateway exited (${code}): ${stderr.slice(-2000)}`))));
  // Only the start waits on it; the exit after this script's SIGTERM is no error.
  exited.catch(() => undefined);
  const started = (async () => {
    while (!ready || !token) await sleep(100);
  })();
  await Promise.race([started, exited, sleep(60_000).then(() => Promise.reject(new Error('gateway not ready within 60 s (did you run npm run build?)')))]);
  return { url: `http://127.0.0.1:${PORT}`, token: token!, process: child, log };
}

async function graphql<T>(gateway: Gateway, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gateway.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: Array<{ message: string }> };
  if (body.errors?.length) throw new Error(`GraphQL: ${body.errors.map((e) => e.message).join('; ')}`);
  return body.data as T;
}

async function post(gateway: Gateway, route: string, body: Buffer | Record<string, unknown>): Promise<{ json: Record<string, unknown>; requestId: string }> {
  const binary = Buffer.isBuffer(body);
  const response = await fetch(`${gateway.url}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gateway.token}`, 'content-type': binary ? 'image/png' : 'application/json' },
    body: binary ? new Uint8Array(body) : JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) throw new Error(`${route} answered ${response.status}: ${JSON.stringify(json)}`);
  return { json, requestId: response.headers.get('x-request-id') ?? '' };
}

interface Figure { guardrail: string; verdict: string; estimate: number | null; lower: number | null; upper: number | null; threshold: number; samples: number }
interface RolloutView {
  id: string; status: string; step: number; trafficPercent: number; candidate: string; baseline: string; reason: string | null;
  createdAt: string; finishedAt: string | null; guardrails: Record<string, number | null>;
  events: Array<{ seq: number; at: string; kind: string; step: number; trafficPercent: number; reason: string; figures: Figure[] }>;
}
const ROLLOUT_FIELDS = `id status step trafficPercent candidate baseline reason createdAt finishedAt
  guardrails { minOverlapAtK minCosine maxRecallDrop maxLatencyRatio maxErrorRate confidence }
  events { seq at kind step trafficPercent reason figures { guardrail verdict estimate lower upper threshold samples } }`;

interface JobView { id: string; status: string; stage: string | null; progress: number; etaSeconds: number | null; reason: string | null; createdAt: string; startedAt: string | null; finishedAt: string | null; log: string[]; variant: { tag: string } | null }

async function waitForJob(gateway: Gateway, id: string): Promise<JobView> {
  let last = '';
  for (;;) {
    const { quantizationJob: job } = await graphql<{ quantizationJob: JobView }>(gateway, `query($id: ID!) { quantizationJob(id: $id) {
      id status stage progress etaSeconds reason createdAt startedAt finishedAt log variant { tag } } }`, { id });
    const line = `  job ${job.status} ${job.stage ?? ''} ${f(job.progress, 1)} % eta ${job.etaSeconds ?? '–'} s`;
    if (line !== last) out(`${new Date().toISOString().slice(11, 19)}${line}`);
    last = line;
    if (['succeeded', 'failed', 'cancelled'].includes(job.status)) return job;
    await sleep(5000);
  }
}

const figureLine = (x: Figure) => `${x.guardrail} ${x.verdict} ${f(x.estimate)} [${f(x.lower)}, ${f(x.upper)}] vs ${x.threshold} (n ${x.samples})`;

/**
 * /search with test images, each answer followed by /feedback with the query's class, until the
 * rollout ends; query i is sent no earlier than i / BENCH_RATE seconds after the first.
 */
async function drive(gateway: Gateway, rolloutId: string, labels: string[]): Promise<{ rollout: RolloutView; sent: number; answered: Map<string, number> }> {
  const queries = idx('t10k', 10_000);
  const answered = new Map<string, number>();
  let sent = 0;
  let seenEvents = 0;
  let lastReason: string | null = null;
  let rollout: RolloutView | undefined;
  const begin = Date.now();
  const query = async (i: number) => {
    if (RATE > 0) await sleep(begin + (1000 * i) / RATE - Date.now());
    const n = i % queries.images.length;
    const { json, requestId } = await post(gateway, `/v2/models/${MODEL}/search`, png(queries.images[n]));
    const variant = String(json.model_version);
    answered.set(variant, (answered.get(variant) ?? 0) + 1);
    await post(gateway, `/v2/models/${MODEL}/feedback`, { id: requestId, label: labels[queries.labels[n]] });
  };
  for (;;) {
    ({ rollout } = await graphql<{ rollout: RolloutView }>(gateway, `query($id: ID!) { rollout(id: $id) { ${ROLLOUT_FIELDS} } }`, { id: rolloutId }));
    for (const event of rollout.events.slice(seenEvents)) {
      out(`${event.at.slice(11, 19)} [${sent} queries] ${event.kind} step ${event.step} (${event.trafficPercent} %): ${event.reason}`);
      for (const figure of event.figures.filter((x) => x.verdict !== 'inapplicable')) out(`    ${figureLine(figure)}`);
    }
    seenEvents = rollout.events.length;
    if (rollout.reason !== lastReason) out(`${new Date().toISOString().slice(11, 19)} [${sent} queries] ${rollout.reason}`);
    lastReason = rollout.reason;
    if (FINISHED.includes(rollout.status) || sent >= MAX_QUERIES) return { rollout, sent, answered };
    const round = 50;
    let next = sent;
    const end = sent + round;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < end) await query(next++);
    }));
    sent = end;
  }
}

interface RetrievalWindow { k: number; cosine: Interval | null; overlapAtK: Interval | null; rankCorrelation: Interval | null; recallAtK: Interval | null; mapAtK: Interval | null }
interface Series { variantTag: string; window: { requests: number; shadowRequests: number; shadowDropped: number; compared: number; feedback: number; latencyMs: { p50: number | null; p99: number | null }; retrieval: RetrievalWindow | null } }
interface Comparison { difference: Interval | null; samples: number; paired: boolean; significant: boolean; pValue?: number | null }

async function report(gateway: Gateway, rollout: RolloutView, from: string): Promise<void> {
  const windowFields = 'requests shadowRequests shadowDropped compared feedback latencyMs { p50 p99 } retrieval { k cosine { estimate lower upper } overlapAtK { estimate lower upper } rankCorrelation { estimate lower upper } recallAtK { estimate lower upper } mapAtK { estimate lower upper } }';
  const { modelMetrics } = await graphql<{ modelMetrics: { variants: Series[] } }>(gateway, `query($model: String!, $from: DateTimeISO!) {
    modelMetrics(model: $model, from: $from) { variants { variantTag window { ${windowFields} } } } }`, { model: MODEL, from });
  const { compareVariants: compared } = await graphql<{ compareVariants: { retrieval: { k: number; recallAtK: Comparison; mapAtK: Comparison } | null; latency: Array<{ measure: string; quantile: number; ratio: Interval | null }> } }>(gateway, `query($model: String!, $a: String!, $b: String!, $from: DateTimeISO!) {
    compareVariants(model: $model, a: $a, b: $b, from: $from) {
      retrieval { k recallAtK { difference { estimate lower upper } samples paired significant pValue } mapAtK { difference { estimate lower upper } samples paired significant } }
      latency { measure quantile ratio { estimate lower upper } } } }`, { model: MODEL, a: rollout.baseline, b: rollout.candidate, from });
  const k = compared.retrieval?.k ?? 10;
  out();
  out(`live figures since the rollout started (${from}); shadow figures are against the variant that answered; intervals at 0.95`);
  out(`| variant | requests | shadowed (dropped) | overlap@${k} | cosine | rank correlation | recall@${k} | mAP@${k} | p50 / p99 ms |`);
  out('|---|---|---|---|---|---|---|---|---|');
  for (const tag of [rollout.baseline, rollout.candidate]) {
    const series = modelMetrics.variants.find((v) => v.variantTag === tag);
    if (!series) continue;
    const w = series.window;
    const r = w.retrieval;
    out(`| ${tag} | ${w.requests} | ${w.shadowRequests} (${w.shadowDropped}) | ${interval(r?.overlapAtK)} | ${interval(r?.cosine)} | ${interval(r?.rankCorrelation)} | ${interval(r?.recallAtK)} | ${interval(r?.mapAtK)} | ${f(w.latencyMs.p50, 1)} / ${f(w.latencyMs.p99, 1)} |`);
  }
  const recall = compared.retrieval?.recallAtK;
  const map = compared.retrieval?.mapAtK;
  out(`${rollout.candidate} − ${rollout.baseline}: recall@${k} ${interval(recall?.difference)} (${recall?.paired ? 'paired' : 'unpaired'}, n ${recall?.samples}, McNemar p ${f(recall?.pValue ?? null)}, significant ${recall?.significant}); mAP@${k} ${interval(map?.difference)} (n ${map?.samples}, significant ${map?.significant})`);
  for (const latency of compared.latency) out(`  latency ${latency.measure} p${latency.quantile * 100} ratio ${interval(latency.ratio)}`);
}

async function main(): Promise<void> {
  const gateway: Gateway = process.env.GATEWAY_URL ? { url: process.env.GATEWAY_URL, token: process.env.GATEWAY_TOKEN ?? '' } : await serve();
  try {
    out(`gateway ${gateway.url}${gateway.log ? `, log ${gateway.log}` : ''}; data ${DATA}; ${RATE > 0 ? `${RATE} queries/s` : 'unpaced'}, ${CONCURRENCY} clients; cores ${os.cpus().length}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    const { registerModel } = await graphql<{ registerModel: { model: { labels: string[] }; variant: { tag: string } } }>(gateway, `mutation($i: RegisterModelInput!) {
      registerModel(input: $i) { model { labels } variant { tag } } }`, { i: { name: MODEL, localPath: 'deploy/demo/models/vit-fmnist-emb-op17.onnx' } });
    const labels = registerModel.model.labels;
    out(`registered ${MODEL} (${registerModel.variant.tag}), labels from its card: ${labels.join(', ')}`);

    const gallery = idx('train', GALLERY);
    const items = gallery.images.map((pixels, i) => ({ id: `train-${i}`, image: png(pixels).toString('base64'), label: labels[gallery.labels[i]] }));
    await post(gateway, `/v2/models/${MODEL}/gallery`, { items });
    out(`gallery: ${items.length} train images, labelled with their class names`);

    const steps = STEPS.map((trafficPercent) => ({ trafficPercent, minRequests: MIN_REQUESTS, minDuration: MIN_DURATION }));
    const { quantizeModel: queued } = await graphql<{ quantizeModel: { id: string; method: string; bits: string; calibSize: number; iters: number } }>(gateway, `mutation($i: QuantizeModelInput!) {
      quantizeModel(input: $i) { id method bits calibSize iters } }`, { i: { model: MODEL, bits: 'W4A4', calibration: { path: DATA, split: 'train' }, rollout: { steps, guardrails: GUARDRAILS } } });
    out(`quantizeModel: job ${queued.id}, ${queued.method} ${queued.bits}, calibSize ${queued.calibSize}, iters ${queued.iters}; rollout steps ${STEPS.join('/')} %, minRequests ${MIN_REQUESTS}, minDuration ${MIN_DURATION} s, guardrails ${GUARDRAILS ? JSON.stringify(GUARDRAILS) : 'the defaults'}`);
    const job = await waitForJob(gateway, queued.id);
    const jobSeconds = (Date.parse(job.finishedAt ?? '') - Date.parse(job.startedAt ?? '')) / 1000;
    out(`job ${job.status} in ${f(jobSeconds, 0)} s (queued to finished ${f((Date.parse(job.finishedAt ?? '') - Date.parse(job.createdAt)) / 1000, 0)} s)${job.reason ? `: ${job.reason}` : ''}`);
    if (job.status !== 'succeeded') throw new Error(`job ${job.status}: ${job.log.slice(-5).join(' | ')}`);

    const { rollouts } = await graphql<{ rollouts: RolloutView[] }>(gateway, `query($model: String!) { rollouts(model: $model) { ${ROLLOUT_FIELDS} } }`, { model: MODEL });
    const [started] = rollouts;
    if (!started) throw new Error('the job succeeded but no rollout was started');
    const g = started.guardrails;
    out(`rollout ${started.id}: ${started.baseline} → ${started.candidate}; guardrails minOverlapAtK ${g.minOverlapAtK}, minCosine ${g.minCosine}, maxRecallDrop ${g.maxRecallDrop}, maxLatencyRatio ${g.maxLatencyRatio}, maxErrorRate ${g.maxErrorRate}, confidence ${g.confidence}`);
    const driven = await drive(gateway, started.id, labels);
    const { rollout } = driven;
    // The controller and the figures read the per-minute rollups: wait for the last flush.
    await sleep(11_000);
    const rolloutSeconds = (Date.parse(rollout.finishedAt ?? new Date().toISOString()) - Date.parse(rollout.createdAt)) / 1000;
    out();
    out(`rollout ${rollout.status} at step ${rollout.step} (${rollout.trafficPercent} %) after ${driven.sent} queries in ${f(rolloutSeconds, 0)} s: ${rollout.reason ?? ''}`);
    out(`answered: ${[...driven.answered].map(([v, n]) => `${v} ${n}`).join(', ')}`);
    await report(gateway, rollout, rollout.createdAt);
    out(`FIMA-Q W4A4 job: ${f(jobSeconds, 0)} s`);
  } finally {
    gateway.process?.kill('SIGTERM');
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
