/**
 * The data plane against raw onnxruntime, side by side in one run (`npm run bench:serving`):
 *   1. throughput and p50 of raw in-process ORT vs the gateway over real HTTP (autocannon in a
 *      separate process), batch 1 and 8, 1 and 32 clients, with dynamic batching off and on; the
 *      added p50 at batch 1 beside that of a bare node:http server running the same model the
 *      same way (JSON in, a worker thread, JSON out), the floor for any Node gateway here;
 *   2. the cost of a 100 % shadow on the primary's p50;
 *   3. JSON vs binary tensors for a 224x224x3 input;
 *   4. the demo classifier and the W4A4 FIMA-Q variant `quantizeModel` makes of it, paired
 *      (the same request bodies, turns taken) through the gateway at batch 1 and 8: the variant's
 *      p50 over its parent's, against the target of 0.8x at batch 8. BENCH_QUANTIZE_ITERS
 *      (default 1000, quantizeModel's) and BENCH_QUANTIZE_CALIB (default 128) set the job's
 *      budget; the served form does not depend on them, only the job's time does.
 * Figures are ratios of measurements taken seconds apart on the same machine; on a shared or
 * loaded machine they wander, so the run prints its load average beside them.
 * Every comparison is measured in BENCH_ROUNDS rounds (default 3) whose parts take turns, and each
 * figure is the median over the rounds, so a burst of load elsewhere tends to hit all parts alike.
 * BENCH_MODEL (an .onnx path), BENCH_SECONDS (per measurement, default 2) and BENCH_THREADS
 * (onnxruntime intra-op threads for raw and gateway alike, default 1) adjust it; BENCH_PARTS
 * (e.g. `4`, default `1,2,3,4`) runs some of the parts. It runs as a plain
 * Node process (register-ts.js), not under jest, whose sandbox slows an HTTP server several-fold.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { readModelCard } from '../../workers/common/model-card';
import { FASHION_MNIST, fimaqPlugin, jobOf } from '../jobs/support/jobs-harness';
import { ADMIN_TOKEN, FIXTURES, startTestGateway, type TestGateway } from '../support/gateway-harness';

const ROOT = path.resolve(__dirname, '../..');
const REFERENCE = path.join(ROOT, 'deploy/demo/models/vit-fmnist-cls-op17.onnx');
const STAND_IN = path.join(ROOT, 'test/fixtures/engine/tiny-vit-cls-op17.onnx');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
/** Each comparison is measured this many times, its parts taking turns; medians are printed. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const LOAD_GENERATOR = path.join(__dirname, 'load-generator.js');
const PARTS = new Set((process.env.BENCH_PARTS ?? '1,2,3,4').split(',').map((p) => Number(p.trim())));
const QUANTIZE_ITERS = Number(process.env.BENCH_QUANTIZE_ITERS ?? 1000);
const QUANTIZE_CALIB = Number(process.env.BENCH_QUANTIZE_CALIB ?? 128);
/** The issue's target for the quantized variant's p50 over its parent's at batch 8. */
const W4A4_TARGET = 0.8;

interface Measure {
  throughput: number;
  p50: number;
  /**
   * CPU time of this process (main thread and session workers) per request, in µs: unlike
   * throughput and latency it hardly depends on what else the machine is running.
   */
  cpuUs: number;
  failures?: number;
}

/** Microseconds of CPU this process used while `work` ran. */
async function withCpu<T>(work: () => Promise<T>): Promise<{ result: T; cpuUs: number }> {
  const before = process.cpuUsage();
  const result = await work();
  const used = process.cpuUsage(before);
  return { result, cpuUs: used.user + used.system };
}

const out = (line = '') => process.stdout.write(`${line}\n`);
const fmt = (n: number, digits = 2) => n.toFixed(digits);

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** `clients` loops calling session.run back to back for the duration, in this process. */
async function rawOrt(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, clients: number): Promise<Measure> {
  const latencies: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      const started = performance.now();
      await session.run(feeds);
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  const { cpuUs } = await withCpu(() => Promise.all(Array.from({ length: clients }, loop)));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { throughput: latencies.length / elapsed, p50: percentile(latencies, 0.5), cpuUs: cpuUs / latencies.length };
}

/** Runs the load generator (a separate process, so it does not share the gateway's event loop). */
function generator<T>(url: string, body: Buffer, headers: Record<string, string>, settings: Record<string, unknown>): Promise<T> {
  const file = path.join(os.tmpdir(), `bench-body-${process.pid}-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(file, body);
  const options = { url, method: 'POST', duration: SECONDS, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers }, ...settings };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [LOAD_GENERATOR, JSON.stringify(options), file], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
      fs.rmSync(file, { force: true });
      if (error) reject(error);
      else resolve(JSON.parse(stdout) as T);
    });
  });
}

/** Throughput and p50 (whole ms) with `clients` concurrent connections (autocannon). */
async function httpLoad(url: string, body: Buffer, headers: Record<string, string>, clients: number): Promise<Measure> {
  type Result = { latency: { p50: number }; non2xx: number; errors: number; '2xx': number; duration: number };
  const { result, cpuUs } = await withCpu(() => generator<Result>(url, body, headers, { connections: clients }));
  return { throughput: result['2xx'] / result.duration, p50: result.latency.p50, cpuUs: cpuUs / Math.max(1, result['2xx']), failures: result.non2xx + result.errors };
}

/** A latency-only figure, to compare in `interleaved`. */
async function asMeasure(p50: Promise<number>): Promise<Measure> {
  return { throughput: 0, p50: await p50, cpuUs: 0 };
}

/** p50 of one request at a time with a sub-millisecond clock. */
async function sequentialLatency(url: string, body: Buffer, headers: Record<string, string>): Promise<number> {
  return (await generator<{ p50: number }>(url, body, headers, { sequential: true })).p50;
}

/**
 * The least a Node server can do per request: parse the JSON tensor, hand it to a worker thread
 * running the session, answer JSON. No routing, auth, validation, policy or metrics.
 */
async function startBareServer(modelFile: string, inputName: string, dims: number[]): Promise<{ url: string; close: () => Promise<void> }> {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
    const ort = require(workerData.ortPath);
    ort.InferenceSession.create(workerData.modelFile, { intraOpNumThreads: workerData.threads, graphOptimizationLevel: 'all' }).then((session) => {
      parentPort.on('message', async (data) => {
        const results = await session.run({ [workerData.inputName]: new ort.Tensor('float32', data, workerData.dims) });
        const out = results[session.outputNames[0]].data;
        parentPort.postMessage(out, [out.buffer]);
      });
      parentPort.postMessage('ready');
    });`,
    { eval: true, workerData: { ortPath: require.resolve('onnxruntime-node'), modelFile, inputName, dims, threads: THREADS } },
  );
  await new Promise((resolve) => worker.once('message', resolve));
  const waiting: Array<(out: Float32Array) => void> = [];
  worker.on('message', (out: Float32Array) => (waiting.shift() as (out: Float32Array) => void)(out));
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = JSON.parse(Buffer.concat(chunks).toString()) as { inputs: Array<{ data: number[] }> };
      const data = Float32Array.from(request.inputs[0].data);
      waiting.push((out) => {
        const body = JSON.stringify({ outputs: [{ name: 'logits', datatype: 'FP32', shape: [1, out.length], data: Array.from(out) }] });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      worker.postMessage(data, [data.buffer]);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      await worker.terminate();
    },
  };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Runs the named measurements in turn, ROUNDS times, and keeps the median of every figure, so
 * that the parts of a comparison see the same machine. `before` runs ahead of each part (a
 * policy change, for instance).
 */
async function interleaved(parts: Record<string, { before?: () => Promise<void>; measure: () => Promise<Measure> }>): Promise<Record<string, Measure>> {
  const names = Object.keys(parts);
  const rounds = new Map<string, Measure[]>(names.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names) {
      await parts[name].before?.();
      (rounds.get(name) as Measure[]).push(await parts[name].measure());
    }
  }
  const result: Record<string, Measure> = {};
  for (const name of names) {
    const all = rounds.get(name) as Measure[];
    result[name] = {
      throughput: median(all.map((m) => m.throughput)),
      p50: median(all.map((m) => m.p50)),
      cpuUs: median(all.map((m) => m.cpuUs)),
      failures: all.reduce((sum, m) => sum + (m.failures ?? 0), 0),
    };
  }
  return result;
}

async function graphql(gateway: TestGateway, query: string, variables: Record<string, unknown>): Promise<void> {
  const result = await gateway.graphql(query, variables);
  if (result.errors) throw new Error(result.errors[0].message);
}

const POLICY = `mutation($model: String!, $policy: TrafficPolicyInput!) { setTrafficPolicy(model: $model, policy: $policy) { version } }`;

/**
 * 4. What a user gets from `quantizeModel`: the W4A4 FIMA-Q variant of the demo classifier,
 * served beside its parent, both asked the same bodies in turn over HTTP.
 */
async function quantizedVariant(gateway: TestGateway, inputName: string, item: number[]): Promise<void> {
  out(`4. the demo classifier vs its quantizeModel W4A4 FIMA-Q variant (iters ${QUANTIZE_ITERS}, calibration ${QUANTIZE_CALIB}), paired through the gateway, one client, sequential p50`);
  const queued = await gateway.graphql<{ quantizeModel: { id: string } }>(
    'mutation($input: QuantizeModelInput!) { quantizeModel(input: $input) { id } }',
    { input: { model: 'bench', bits: 'W4A4', method: 'FIMAQ', calibration: { path: FASHION_MNIST, split: 'train' }, calibSize: QUANTIZE_CALIB, iters: QUANTIZE_ITERS, shadow: false } },
  );
  if (!queued.data) throw new Error(`quantizeModel failed: ${JSON.stringify(queued.errors)}`);
  const started = performance.now();
  let job = await jobOf(gateway, queued.data.quantizeModel.id);
  while (job.status === 'queued' || job.status === 'running') {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    job = await jobOf(gateway, job.id);
  }
  if (job.status !== 'succeeded' || !job.variant) throw new Error(`the quantization job ${job.status}: ${job.reason}`);
  const form = job.variant.config.exportForm as { form: string; reason: string };
  out(`   job ${fmt((performance.now() - started) / 1000, 0)} s; variant ${job.variant.tag} served in form '${form.form}': ${form.reason}`);
  out('   batch | FP32 p50 ms | W4A4 p50 ms | W4A4/FP32');
  const json = { 'content-type': 'application/json' };
  for (const batch of [1, 8]) {
    const shape = [batch, ...item];
    const body = jsonBody(inputName, shape, randomRows(batch, item.reduce((a, b) => a * b, 1)));
    const url = (version: string) => `${gateway.url}/v2/models/bench/versions/${version}/infer`;
    await sequentialLatency(url(job.variant.tag), body, json); // loads the variant's session
    const paired = await interleaved({
      fp32: { measure: () => asMeasure(sequentialLatency(url('fp32'), body, json)) },
      w4a4: { measure: () => asMeasure(sequentialLatency(url(job.variant!.tag), body, json)) },
    });
    const ratio = paired.w4a4.p50 / paired.fp32.p50;
    const target = batch === 8 ? `  (target <= ${W4A4_TARGET}: ${ratio <= W4A4_TARGET ? 'met' : 'not met'})` : '';
    out(`   ${String(batch).padStart(5)} | ${fmt(paired.fp32.p50, 3).padStart(11)} | ${fmt(paired.w4a4.p50, 3).padStart(11)} | ${fmt(ratio).padStart(9)}${target}`);
  }
  out();
}

function randomRows(rows: number, rowLength: number): Float32Array {
  const data = new Float32Array(rows * rowLength);
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1;
  return data;
}

function jsonBody(name: string, shape: number[], data: Float32Array): Buffer {
  return Buffer.from(JSON.stringify({ inputs: [{ name, datatype: 'FP32', shape, data: Array.from(data) }] }));
}

function binaryBody(name: string, shape: number[], data: Float32Array): { body: Buffer; headers: Record<string, string> } {
  const header = Buffer.from(JSON.stringify({ inputs: [{ name, datatype: 'FP32', shape, parameters: { binary_data_size: data.byteLength } }] }));
  return {
    body: Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
  };
}

async function main(): Promise<void> {
  const modelFile = process.env.BENCH_MODEL ?? (fs.existsSync(REFERENCE) ? REFERENCE : STAND_IN);
  const card = readModelCard(modelFile);
  const session = await ort.InferenceSession.create(modelFile, { intraOpNumThreads: THREADS, graphOptimizationLevel: 'all' });
  const input = session.inputMetadata[0];
  if (!input.isTensor) throw new Error(`${modelFile}: the input is not a tensor`);
  const [channels, height, width] = input.shape.slice(1) as number[];
  const rowLength = channels * height * width;

  const gateway = await startTestGateway({ env: { ORT_INTRA_OP_THREADS: String(THREADS), SERVING_QUEUE_LIMIT: '1024' }, plugins: [fimaqPlugin()] });
  try {
    await graphql(gateway, `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`, {
      input: {
        name: 'bench',
        task: 'CLASSIFICATION',
        labels: card?.labels,
        preprocessing: card?.preprocessing ?? { height, width, channels },
        localPath: modelFile,
      },
    });
    const sha = (await gateway.services.registry.listVariants((await gateway.services.registry.getModel('bench')).id))[0].artifactSha256;
    await graphql(gateway, `mutation($input: AddVariantInput!) { addVariant(input: $input) { id } }`, {
      input: { model: 'bench', tag: 'shadow-copy', artifactSha256: sha },
    });
    const infer = `${gateway.url}/v2/models/bench/infer`;
    const json = { 'content-type': 'application/json' };

    out();
    out(`serving benchmark: ${path.relative(ROOT, modelFile)}${modelFile === STAND_IN ? ' (stand-in: the reference model is not built yet)' : ''}`);
    out(`input ${input.name} [N, ${channels}, ${height}, ${width}], ORT intra-op threads ${THREADS}, ${SECONDS} s per measurement, medians of ${ROUNDS} rounds, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => fmt(l, 1)).join(' ')}`);
    out();
    if (PARTS.has(1)) {
      out('1. raw in-process ORT vs the gateway over HTTP, JSON and binary tensors, dynamic batching off and on (max 16 rows, 1 ms)');
      out('   batch clients tensors | raw req/s  p50 ms  CPU µs/req | gateway req/s  p50 ms  CPU µs/req | batched req/s  p50 ms | gateway/raw  batched/raw');
      const batchingOn = { routes: [{ variant: 'fp32', weight: 1 }], batching: { maxBatchSize: 16, maxQueueDelayMs: 1 } };
      const batchingOff = { routes: [{ variant: 'fp32', weight: 1 }] };
      for (const batch of [1, 8]) {
        const data = randomRows(batch, rowLength);
        const shape = [batch, channels, height, width];
        const feeds = { [input.name]: new ort.Tensor('float32', data, shape) };
        const encodings = [
          { label: 'JSON', body: jsonBody(input.name, shape, data), headers: json },
          { label: 'binary', ...binaryBody(input.name, shape, data) },
        ];
        await httpLoad(infer, encodings[0].body, encodings[0].headers, 4); // warm the session and the connection pool
        for (const clients of [1, 32]) {
          const setPolicy = (policy: Record<string, unknown>) => () => graphql(gateway, POLICY, { model: 'bench', policy });
          const m = await interleaved({
            raw: { measure: () => rawOrt(session, feeds, clients) },
            ...Object.fromEntries(
              encodings.flatMap(({ label, body, headers }) => [
                [`${label} gateway`, { before: setPolicy(batchingOff), measure: () => httpLoad(infer, body, headers, clients) }],
                [`${label} batched`, { before: setPolicy(batchingOn), measure: () => httpLoad(infer, body, headers, clients) }],
              ]),
            ),
          });
          await setPolicy(batchingOff)();
          const raw = m.raw;
          const cells = [fmt(raw.throughput, 0).padStart(9), fmt(raw.p50).padStart(6), fmt(raw.cpuUs, 0).padStart(10)].join('  ');
          for (const { label } of encodings) {
            const served = m[`${label} gateway`];
            const batched = m[`${label} batched`];
            const gatewayCells = [fmt(served.throughput, 0).padStart(13), fmt(served.p50).padStart(6), fmt(served.cpuUs, 0).padStart(10)].join('  ');
            const batchedCells = [fmt(batched.throughput, 0).padStart(13), fmt(batched.p50).padStart(6)].join('  ');
            const ratios = `${fmt(served.throughput / raw.throughput).padStart(11)}  ${fmt(batched.throughput / raw.throughput).padStart(11)}`;
            const failures = (served.failures ?? 0) + (batched.failures ?? 0);
            out(`   ${String(batch).padStart(5)} ${String(clients).padStart(7)} ${label.padStart(7)} | ${cells} | ${gatewayCells} | ${batchedCells} | ${ratios}${failures ? `  (${failures} failed)` : ''}`);
          }
        }
    }
    }
    const oneRow = randomRows(1, rowLength);
    const oneBody = jsonBody(input.name, [1, channels, height, width], oneRow);
    if (PARTS.has(1)) {
      const bare = await startBareServer(modelFile, input.name, [1, channels, height, width]);
      const one = await interleaved({
        raw: { measure: () => rawOrt(session, { [input.name]: new ort.Tensor('float32', oneRow, [1, channels, height, width]) }, 1) },
        gateway: { measure: () => asMeasure(sequentialLatency(infer, oneBody, json)) },
        bare: { measure: () => asMeasure(sequentialLatency(bare.url, oneBody, json)) },
      });
      await bare.close();
      const [rawOne, gatewayOne, bareOne] = [one.raw.p50, one.gateway.p50, one.bare.p50];
      out(`   added p50 at batch 1, one client (sub-ms clock): gateway ${fmt(gatewayOne, 3)} ms - raw ${fmt(rawOne, 3)} ms = ${fmt(gatewayOne - rawOne, 3)} ms`);
      out(`   floor: a bare node:http server (JSON, worker thread, no routing/auth/metrics) ${fmt(bareOne, 3)} ms - raw = ${fmt(bareOne - rawOne, 3)} ms; the gateway adds ${fmt(gatewayOne - bareOne, 3)} ms to it`);
    }
    if (PARTS.has(2)) {
      out();
      out('2. shadow cost on the primary (batch 1, one client, sequential p50)');
      const shadowCost = await interleaved({
        alone: { before: () => graphql(gateway, POLICY, { model: 'bench', policy: { routes: [{ variant: 'fp32', weight: 1 }] } }), measure: () => asMeasure(sequentialLatency(infer, oneBody, json)) },
        shadowed: {
          before: () => graphql(gateway, POLICY, { model: 'bench', policy: { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'shadow-copy', mirrorPercent: 100 }] } }),
          measure: () => asMeasure(sequentialLatency(infer, oneBody, json)),
        },
      });
      const [alone, shadowed] = [shadowCost.alone.p50, shadowCost.shadowed.p50];
      out(`   p50 alone ${fmt(alone, 3)} ms | with a 100 % shadow ${fmt(shadowed, 3)} ms | cost ${fmt((shadowed / alone - 1) * 100, 1)} %`);
    }
    if (PARTS.has(3)) {
      out();
      out('3. JSON vs binary tensors, one 224x224x3 input (near-zero model), 8 clients');
      await graphql(gateway, `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`, {
        input: { name: 'rgb224', task: 'CLASSIFICATION', preprocessing: { height: 224, width: 224, channels: 3 }, localPath: path.join(FIXTURES, 'rgb224-classifier.onnx') },
      });
      const image = randomRows(1, 3 * 224 * 224);
      const rgbUrl = `${gateway.url}/v2/models/rgb224/infer`;
      const asJson = jsonBody('input', [1, 3, 224, 224], image);
      const asBinary = binaryBody('input', [1, 3, 224, 224], image);
      await httpLoad(rgbUrl, asBinary.body, asBinary.headers, 2);
      const jsonLoad = await httpLoad(rgbUrl, asJson, json, 8);
      const binaryLoad = await httpLoad(rgbUrl, asBinary.body, asBinary.headers, 8);
      out(`   JSON ${fmt(jsonLoad.throughput, 0)} req/s (${fmt(asJson.length / 1e6)} MB, p50 ${fmt(jsonLoad.p50)} ms, ${fmt(jsonLoad.cpuUs / 1000, 1)} ms CPU/req) | binary ${fmt(binaryLoad.throughput, 0)} req/s (${fmt(asBinary.body.length / 1e6)} MB, p50 ${fmt(binaryLoad.p50)} ms, ${fmt(binaryLoad.cpuUs / 1000, 1)} ms CPU/req)`);
      out(`   binary/JSON throughput ${fmt(binaryLoad.throughput / jsonLoad.throughput)}, JSON/binary CPU per request ${fmt(jsonLoad.cpuUs / binaryLoad.cpuUs)}`);
      out();
    }
    if (PARTS.has(4)) {
      if (modelFile === REFERENCE) await quantizedVariant(gateway, input.name, [channels, height, width]);
      else out('4. skipped: the quantized variant is measured on the demo classifier (deploy/demo), calibrated on its Fashion-MNIST sample');
    }
  } finally {
    await session.release();
    await gateway.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`serving benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
