/**
 * Quantization jobs end to end (`npm run bench:jobs`), side by side in one run:
 *   1. dispatch latency, mutation → worker start (the worker's "job started" log line), with
 *      idle workers: p50 / p99 over BENCH_LATENCY_JOBS jobs sent one after another;
 *   2. BENCH_JOBS jobs queued first, then worked off by 1 worker process, then by 2: every job
 *      completes exactly once (one start, one success, one variant); throughput ratio 2 vs 1
 *      from the first worker start to the last success;
 *   3. the embedded default: inference p99 over HTTP with and without a quantization job
 *      running in the embedded worker process;
 *   4. how true a job's ETA is: W4A4 FIMA-Q jobs on the demo classifier with an evaluation set,
 *      one per BENCH_ETA_ITERS setting (default `1000,200`; 1000 and BENCH_ETA_CALIB's default
 *      128 are quantizeModel's defaults), polled every second; once a job is 10 % done, each
 *      etaSeconds against the time the job really took to finish from then (target: within
 *      30 %); and that progress never went back. BENCH_ETA_TRACE=file.json keeps every poll
 *      (stage, block, iteration, progress, ETA, and the truth) of the last job for a closer look.
 * BENCH_PARTS (e.g. `4`, default `1,2,3,4`) runs some of the parts.
 * Jobs are RTN on the small test ViT with 8 calibration images (BENCH_ENGINE=copy swaps in the
 * test stand-in engine to measure the transport alone). Needs NATS (NATS_URL, default the test
 * server). Figures are ratios measured minutes apart on one machine; the run prints the load.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ADMIN_TOKEN, startTestGateway, uploadArtifact, type TestGateway } from '../support/gateway-harness';
import { NATS_TEST_URL } from '../support/services';
import {
  COPY_ENGINE, deleteNamespace, FASHION_MNIST, fimaqPlugin, jobOf, npyImages, quantize, queuedJobMessages, registerTinyClassifier, startWorker,
  uniqueNamespace, waitFor, waitForStatus, type WorkerProcess,
} from '../jobs/support/jobs-harness';

const NATS_URL = process.env.NATS_URL ?? NATS_TEST_URL;
const JOBS = Number(process.env.BENCH_JOBS ?? 50);
const LATENCY_JOBS = Number(process.env.BENCH_LATENCY_JOBS ?? 20);
const INFERENCE_SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PARTS = new Set((process.env.BENCH_PARTS ?? '1,2,3,4').split(',').map((p) => Number(p.trim())));
const ETA_ITERS = (process.env.BENCH_ETA_ITERS ?? '1000,200').split(',').map((i) => Number(i.trim()));
const ETA_CALIB = Number(process.env.BENCH_ETA_CALIB ?? 128);
const DEMO_CLASSIFIER = path.join(__dirname, '..', '..', 'deploy', 'demo', 'models', 'vit-fmnist-cls-op17.onnx');
/** The bound on the ETA's error once a job is 10 % done. */
const ETA_TOLERANCE = 0.3;
const ENGINE_ENV: Record<string, string> = process.env.BENCH_ENGINE === 'copy'
  ? { WORKER_ENGINE_MODULE: COPY_ENGINE, COPY_ENGINE_STEPS: '5', COPY_ENGINE_STEP_MS: '20' }
  : { WORKER_ENGINE_MODULE: '' };

const out = (line = '') => process.stdout.write(`${line}\n`);
const percentile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const fmt = (n: number, digits = 1) => n.toFixed(digits);

/** Per job, when each worker logged "job started" / "job succeeded" (epoch ms). */
function workerLog(workers: WorkerProcess[]): Map<string, { started: number[]; succeeded: number[] }> {
  const byJob = new Map<string, { started: number[]; succeeded: number[] }>();
  for (const line of workers.flatMap((w) => w.output().split('\n'))) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; job?: string; time: number };
    if (!entry.job || (entry.msg !== 'job started' && entry.msg !== 'job succeeded')) continue;
    const record = byJob.get(entry.job) ?? { started: [], succeeded: [] };
    (entry.msg === 'job started' ? record.started : record.succeeded).push(entry.time);
    byJob.set(entry.job, record);
  }
  return byJob;
}

async function natsSetup() {
  const namespace = uniqueNamespace();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-jobs-'));
  const gateway = await startTestGateway({
    plugins: [fimaqPlugin({ config: { natsNamespace: namespace, dispatchIntervalMs: 1000, shadowByDefault: false } })],
    env: { NATS_URL },
  });
  await registerTinyClassifier(gateway);
  // A small uploaded calibration file keeps each mutation cheap, so submitting is not what is measured.
  const upload = (await (await uploadArtifact(gateway, npyImages([8, 28, 28]))).json()) as { sha256: string };
  const submit = (seed: number) => quantize(gateway, { seed, calibration: { artifactSha256: upload.sha256, format: 'npy' } });
  const workers: WorkerProcess[] = [];
  const startWorkers = async (count: number) => {
    for (let i = 0; i < count; i++) {
      workers.push(startWorker({
        NATS_URL, FIMAQ_NATS_NAMESPACE: namespace, WORKER_ID: `bench-${i}`, DATA_DIR: path.join(tmp, `w${i}`), LOG_LEVEL: 'info', ...ENGINE_ENV,
      }));
    }
    await waitFor('workers to be ready', async () => (workers.every((w) => /worker ready/.test(w.output())) ? true : undefined), 60_000);
  };
  return {
    namespace,
    gateway,
    workers,
    submit,
    startWorkers,
    stop: async () => {
      await Promise.all(workers.map((w) => w.stop('SIGKILL')));
      await gateway.stop();
      await deleteNamespace(NATS_URL, namespace);
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

async function dispatchLatency(): Promise<number[]> {
  const setup = await natsSetup();
  try {
    await setup.startWorkers(2);
    const sentAt = new Map<string, number>();
    for (let i = 0; i < LATENCY_JOBS; i++) {
      const sent = Date.now();
      const id = (await setup.submit(i)).data!.quantizeModel.id;
      sentAt.set(id, sent);
      await waitForStatus(setup.gateway, id, ['succeeded', 'failed'], 120_000);
    }
    const log = workerLog(setup.workers);
    return [...sentAt].map(([id, sent]) => (log.get(id)?.started[0] ?? Number.NaN) - sent).sort((a, b) => a - b);
  } finally {
    await setup.stop();
  }
}

interface BurstResult {
  /** First worker start to last worker success. */
  seconds: number;
  submitSeconds: number;
  exactlyOnce: boolean;
  queuedP50: number;
  queuedP99: number;
  problems: string[];
}

async function burst(workerCount: number): Promise<BurstResult> {
  const setup = await natsSetup();
  try {
    // The whole batch waits in the work queue first, so the workers, not the submissions, set the pace.
    const sentAt = new Map<string, number>();
    const started = performance.now();
    for (let i = 0; i < JOBS; i++) {
      const sent = Date.now();
      const result = await setup.submit(i);
      if (!result.data) throw new Error(`quantizeModel failed: ${JSON.stringify(result.errors)}`);
      sentAt.set(result.data.quantizeModel.id, sent);
    }
    const submitSeconds = (performance.now() - started) / 1000;
    await waitFor('every job to be published', async () => ((await queuedJobMessages(NATS_URL, setup.namespace)) === JOBS ? true : undefined));
    await setup.startWorkers(workerCount);
    const jobs = [];
    for (const id of sentAt.keys()) jobs.push(await waitForStatus(setup.gateway, id, ['succeeded', 'failed', 'cancelled'], 600_000));
    const log = workerLog(setup.workers);
    const records = [...log.values()];
    const seconds = (Math.max(...records.flatMap((r) => r.succeeded)) - Math.min(...records.flatMap((r) => r.started))) / 1000;
    const problems: string[] = [];
    for (const job of jobs) {
      const record = log.get(job.id);
      if (job.status !== 'succeeded') problems.push(`${job.id} ${job.status}: ${job.reason}`);
      if (record?.started.length !== 1 || record.succeeded.length !== 1) problems.push(`${job.id} started ${record?.started.length ?? 0}x, succeeded ${record?.succeeded.length ?? 0}x`);
    }
    const model = await setup.gateway.graphql<{ model: { variants: Array<{ config: { jobId?: string } }> } }>(`{ model(name: "tiny") { variants { config } } }`);
    const variantJobs = model.data!.model.variants.map((v) => v.config.jobId).filter(Boolean);
    if (variantJobs.length !== JOBS || new Set(variantJobs).size !== JOBS) problems.push(`${variantJobs.length} variants for ${JOBS} jobs`);
    const waits = [...sentAt].map(([id, sent]) => (log.get(id)?.started[0] ?? Number.NaN) - sent).sort((a, b) => a - b);
    return { seconds, submitSeconds, exactlyOnce: problems.length === 0, queuedP50: percentile(waits, 0.5), queuedP99: percentile(waits, 0.99), problems };
  } finally {
    await setup.stop();
  }
}

interface Latency {
  p50: number;
  p99: number;
  requests: number;
}

async function inferenceP99(gateway: TestGateway, body: string, seconds: number): Promise<Latency> {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const sent = performance.now();
    const response = await fetch(`${gateway.url}/v2/models/tiny/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body,
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`inference failed: ${response.status}`);
    latencies.push(performance.now() - sent);
  }
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), requests: latencies.length };
}

async function embeddedInference(): Promise<{ idle: Latency; busy: Latency; jobSeconds: number; runningAfter: boolean }> {
  const gateway = await startTestGateway({ plugins: [fimaqPlugin({ config: { shadowByDefault: false } })] });
  try {
    await registerTinyClassifier(gateway);
    const pre = await gateway.graphql<{ model: { preprocessing: { inputName: string } } }>(`{ model(name: "tiny") { preprocessing { inputName } } }`);
    const body = JSON.stringify({ inputs: [{ name: pre.data!.model.preprocessing.inputName, datatype: 'FP32', shape: [1, 1, 28, 28], data: new Array(784).fill(0.5) }] });
    await inferenceP99(gateway, body, 1);
    const idle = await inferenceP99(gateway, body, INFERENCE_SECONDS);
    // A job long enough to cover the measurement: RTN over 1024 calibration images.
    const id = (await quantize(gateway, { calibSize: 1024, calibration: { path: FASHION_MNIST } })).data!.quantizeModel.id;
    const jobStarted = performance.now();
    await waitForStatus(gateway, id, ['running']);
    const busy = await inferenceP99(gateway, body, INFERENCE_SECONDS);
    const runningAfter = (await jobOf(gateway, id)).status === 'running';
    const job = await waitForStatus(gateway, id, ['succeeded', 'failed'], 600_000);
    if (job.status !== 'succeeded') throw new Error(`embedded job failed: ${job.reason}`);
    return { idle, busy, jobSeconds: (performance.now() - jobStarted) / 1000, runningAfter };
  } finally {
    await gateway.stop();
  }
}

interface EtaResult {
  seconds: number;
  samples: number;
  /** |eta - truth| / truth of every sample taken at 10 % or later, sorted. */
  errors: number[];
  monotonic: boolean;
}

async function etaTruth(iters: number): Promise<EtaResult> {
  const gateway = await startTestGateway({ plugins: [fimaqPlugin({ config: { shadowByDefault: false } })] });
  try {
    const registered = await gateway.graphql(
      'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }',
      { input: { name: 'demo', task: 'CLASSIFICATION', localPath: DEMO_CLASSIFIER, preprocessing: { height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353] } } },
    );
    if (registered.errors) throw new Error(registered.errors[0].message);
    const queued = await quantize(gateway, {
      model: 'demo', method: 'FIMAQ', bits: 'W4A4', calibSize: ETA_CALIB, iters, calibration: { path: FASHION_MNIST }, evaluation: { path: FASHION_MNIST, split: 'test' },
    });
    if (!queued.data) throw new Error(JSON.stringify(queued.errors));
    const id = queued.data.quantizeModel.id;
    const started = performance.now();
    const samples: { at: number; progress: number; eta: number | null; stage: string | null; block: number | null; iteration: number | null }[] = [];
    let job = await jobOf(gateway, id);
    while (job.status === 'queued' || job.status === 'running') {
      if (job.status === 'running') samples.push({ at: performance.now(), progress: job.progress, eta: job.etaSeconds, stage: job.stage, block: job.block, iteration: job.iteration });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      job = await jobOf(gateway, id);
    }
    if (job.status !== 'succeeded') throw new Error(`the FIMA-Q job ${job.status}: ${job.reason}`);
    const ended = performance.now();
    if (process.env.BENCH_ETA_TRACE) {
      const trace = samples.map(({ at, ...sample }) => ({ ...sample, second: (at - started) / 1000, truth: (ended - at) / 1000 }));
      fs.writeFileSync(process.env.BENCH_ETA_TRACE, JSON.stringify(trace, null, 1));
    }
    const errors = samples
      .filter((s) => s.progress >= 10 && s.progress < 100 && s.eta !== null && ended - s.at > 2000)
      .map((s) => Math.abs((s.eta as number) - (ended - s.at) / 1000) / ((ended - s.at) / 1000))
      .sort((a, b) => a - b);
    const monotonic = samples.every((s, i) => i === 0 || s.progress >= samples[i - 1].progress);
    return { seconds: (ended - started) / 1000, samples: samples.length, errors, monotonic };
  } finally {
    await gateway.stop();
  }
}

async function main(): Promise<void> {
  if (PARTS.has(1) || PARTS.has(2) || PARTS.has(3)) await transportParts();
  if (PARTS.has(4)) {
    out(`ETA truth, W4A4 FIMA-Q on the demo classifier with evaluation, calibration ${ETA_CALIB}; ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => fmt(l, 2)).join(' ')}`);
    for (const iters of ETA_ITERS) {
      const eta = await etaTruth(iters);
      const within = eta.errors.filter((e) => e <= ETA_TOLERANCE).length;
      out(`  iters ${iters}: job ${fmt(eta.seconds)} s, ${eta.samples} polls; after 10 %: ${within}/${eta.errors.length} ETAs `
        + `(${fmt((100 * within) / Math.max(1, eta.errors.length))} %) within ${ETA_TOLERANCE * 100} % of the truth, error median ${fmt(100 * percentile(eta.errors, 0.5))} %, `
        + `p90 ${fmt(100 * percentile(eta.errors, 0.9))} %, max ${fmt(100 * (eta.errors.at(-1) ?? 0))} %; progress never went back: ${eta.monotonic}`);
      if (!eta.monotonic) process.exitCode = 1;
    }
  }
}

async function transportParts(): Promise<void> {
  out(`bench:jobs  ${JOBS} jobs, engine ${process.env.BENCH_ENGINE === 'copy' ? 'copy stand-in' : 'rtn (8 calibration images)'}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => fmt(l, 2)).join(' ')}`);
  const latencies = await dispatchLatency();
  out(`dispatch latency (idle workers, ${latencies.length} jobs): p50 ${fmt(percentile(latencies, 0.5))} ms, p99 ${fmt(percentile(latencies, 0.99))} ms`);
  const one = await burst(1);
  const line = (label: string, r: BurstResult) => `${label}: ${JOBS} jobs in ${fmt(r.seconds)} s of work (${fmt((60 * JOBS) / r.seconds)} jobs/min; submitted in ${fmt(r.submitSeconds)} s), `
    + `exactly once: ${r.exactlyOnce}, queued-batch mutation → start p50 ${fmt(r.queuedP50 / 1000)} s p99 ${fmt(r.queuedP99 / 1000)} s`;
  out(line('1 worker ', one));
  const two = await burst(2);
  out(line('2 workers', two));
  out(`throughput 2 workers / 1 worker: ${fmt(one.seconds / two.seconds, 2)}x`);
  for (const problem of [...one.problems, ...two.problems]) out(`  PROBLEM ${problem}`);
  const embedded = await embeddedInference();
  out(`embedded inference p99: idle ${fmt(embedded.idle.p99, 2)} ms (${embedded.idle.requests} req), during a job ${fmt(embedded.busy.p99, 2)} ms (${embedded.busy.requests} req): ratio ${fmt(embedded.busy.p99 / embedded.idle.p99, 2)}x; p50 ${fmt(embedded.idle.p50, 2)} → ${fmt(embedded.busy.p50, 2)} ms`);
  out(`  (the job ran ${fmt(embedded.jobSeconds)} s${embedded.runningAfter ? ', through the whole measurement' : '; it ENDED before the measurement did: raise its size'})`);
  out(`load after: ${os.loadavg().map((l) => fmt(l, 2)).join(' ')}`);
  if (!one.exactlyOnce || !two.exactlyOnce) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:jobs failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
