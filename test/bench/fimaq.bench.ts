/**
 * FIMA-Q's baseline ladder (`npm run bench:fimaq`), side by side in one run: FP32, rtn, calib, mse,
 * fisher_diag, fisher_dplr at W4A4 and W3A3, the same iteration budget and seeds, top-1 of the
 * simulated and the exported model; on the retrieval encoder recall@1/5 against FP neighbours and
 * mean cosine for rtn, calib and fisher_dplr; cost figures (stage times, it/s, time per block,
 * Fisher snapshot share, peak memory).
 *
 * The full benchmark (1000 iterations, 1024 reconstruction images, 3 seeds, 10000 test images) takes
 * hours on two shared cores; every knob is an environment variable for a reduced budget:
 *   FIMAQ_BENCH_MODEL, FIMAQ_BENCH_EMB_MODEL (set to "" to skip retrieval), FIMAQ_BENCH_DATA,
 *   FIMAQ_BENCH_BITS=w4a4,w3a3  FIMAQ_BENCH_METHODS=rtn,calib,mse,fisher_diag,fisher_dplr
 *   FIMAQ_BENCH_SEEDS=0,1,2  FIMAQ_BENCH_ITERS=1000  FIMAQ_BENCH_CALIB=128  FIMAQ_BENCH_RECON=1024
 *   FIMAQ_BENCH_EVAL_LIMIT (default: the whole test split)  FIMAQ_BENCH_OUT=results.json
 *   FIMAQ_BENCH_THREADS=0 (onnxruntime threads of stage 2)
 *   FIMAQ_BENCH_REFERENCES=gallery (the encoder's reference sets: gallery, prototypes or both)
 *   FIMAQ_BENCH_INCLUDE=a.json,b.json: runs an earlier invocation wrote (FIMAQ_BENCH_OUT) join the
 *   tables, so seeds or bit widths can be measured in several sittings
 * rtn and calib do not depend on the seed; they run once per bit width. Stage 1 is computed once
 * per model and bit width and reused by every method and seed (the cost table marks it "reused").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readModelCard } from '../../workers/common/model-card';
import type { Preprocessing } from '../../workers/common/preprocessing';
import { openDataset } from '../../workers/data';
import { quantizeModel } from '../../workers/quantization';
import { OnnxImageModel } from '../../workers/eval/onnx-model';
import type { CalibrationCache } from '../../workers/fimaq/calibrate';
import { evaluateQuantized, type QualityMetrics } from '../../workers/fimaq/evaluate-quantized';

const ROOT = path.join(__dirname, '..', '..');
const firstExisting = (...paths: string[]): string => paths.find((p) => fs.existsSync(p)) ?? paths[paths.length - 1];
const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter(Boolean);

const MODEL = env('FIMAQ_BENCH_MODEL', firstExisting(path.join(ROOT, 'deploy/demo/models/vit-fmnist-cls-op17.onnx'), path.join(ROOT, 'test/fixtures/fimaq/trained-tiny-vit-cls-op17.onnx')));
const EMB_MODEL = env('FIMAQ_BENCH_EMB_MODEL', firstExisting(path.join(ROOT, 'deploy/demo/models/vit-fmnist-emb-op17.onnx'), ''));
const DATA = env('FIMAQ_BENCH_DATA', firstExisting('/usr/share/datasets/fashion-mnist', path.join(ROOT, 'deploy/demo/data/fashion-mnist')));
const BITS = list(env('FIMAQ_BENCH_BITS', 'w4a4,w3a3'));
const METHODS = list(env('FIMAQ_BENCH_METHODS', 'rtn,calib,mse,fisher_diag,fisher_dplr'));
const SEEDS = list(env('FIMAQ_BENCH_SEEDS', '0,1,2')).map(Number);
const ITERS = Number(env('FIMAQ_BENCH_ITERS', '1000'));
const CALIB = Number(env('FIMAQ_BENCH_CALIB', '128'));
const RECON = Number(env('FIMAQ_BENCH_RECON', '1024'));
/** onnxruntime threads per run: 1 lets two benchmark processes share two cores with little loss. */
const THREADS = Number(env('FIMAQ_BENCH_THREADS', '0'));
const REFERENCES = list(env('FIMAQ_BENCH_REFERENCES', 'gallery')) as ('gallery' | 'prototypes')[];
const EVAL_LIMIT = process.env.FIMAQ_BENCH_EVAL_LIMIT ? Number(process.env.FIMAQ_BENCH_EVAL_LIMIT) : undefined;
const OUT = process.env.FIMAQ_BENCH_OUT;
const INCLUDE = list(env('FIMAQ_BENCH_INCLUDE', ''));
const SEED_FREE = new Set(['rtn', 'calib']);
/** The Fashion-MNIST preprocessing of the demo models, for models without a card. */
const FMNIST: Omit<Preprocessing, 'inputName'> = { layout: 'NCHW', height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353] };

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

interface Run {
  model: string;
  bits: string;
  method: string;
  seed: number;
  /** The retrieval encoder's reference set. */
  reference?: string;
  simulated: QualityMetrics;
  exported: QualityMetrics;
  fp: QualityMetrics;
  seconds: number;
  /** CPU seconds of this process while quantizing: the work, whatever else shares the cores. */
  cpuSeconds: number;
  stage1Seconds?: number;
  /** Stage 1 came from the calibration cache (computed once per model and bit width). */
  stage1Reused?: boolean;
  stage2Seconds?: number;
  blocks?: { name: string; seconds: number; snapshotSeconds: number; iterationsPerSecond: number; mseBefore: number; mseAfter: number }[];
  peakRssMiB: number;
}

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 200);

type Task = 'classification' | 'retrieval';

function preprocessingOf(modelPath: string): Preprocessing {
  return readModelCard(modelPath)?.preprocessing ?? { inputName: 'input', ...FMNIST };
}

/**
 * One stage-1 result per model and bit width, shared by every method and seed: stage 1 does not
 * depend on the seed, so the losses are compared from the very same calibration.
 */
const calibrationCaches = new Map<string, CalibrationCache>();
const calibrationCacheOf = (modelPath: string): CalibrationCache => {
  if (!calibrationCaches.has(modelPath)) calibrationCaches.set(modelPath, new Map());
  return calibrationCaches.get(modelPath) as CalibrationCache;
};

async function runOne(modelPath: string, task: Task, bits: string, method: string, seed: number, reference: 'gallery' | 'prototypes' = 'gallery'): Promise<Run> {
  const pre = preprocessingOf(modelPath);
  const calibration = await openDataset({ path: DATA, split: 'train' }, pre);
  const test = await openDataset({ path: DATA, split: 'test' }, pre);
  peakRss = process.memoryUsage().rss;
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const result = await quantizeModel({
    model: fs.readFileSync(modelPath), modelName: modelPath, calibration, bits, method, calibSize: CALIB,
    methodOptions: { iters: ITERS, reconSize: RECON, seed, threads: THREADS, task, reference: { kind: reference }, calibrationCache: calibrationCacheOf(modelPath) },
  });
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const exportedPath = path.join(os.tmpdir(), `fimaq-bench-${process.pid}.onnx`);
  fs.writeFileSync(exportedPath, result.onnx);
  const [fp, exported] = [await OnnxImageModel.load(modelPath), await OnnxImageModel.load(exportedPath)];
  const evaluation = await evaluateQuantized({
    task, data: test, fp, exported, imageModel: result.imageModel, quantized: result.quantized, inputName: pre.inputName, limit: EVAL_LIMIT,
  });
  await fp.close();
  await exported.close();
  fs.rmSync(exportedPath);
  result.quantized.dispose();
  const report = result.report.methodReport as { stage1?: { seconds: number; reused?: boolean }; stage2?: { seconds: number; blocks: Run['blocks'] } } | undefined;
  return {
    model: path.basename(modelPath), bits, method, seed, reference: task === 'retrieval' ? reference : undefined, fp: evaluation.fp, simulated: evaluation.simulated, exported: evaluation.exported, seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6, stage1Seconds: report?.stage1?.seconds, stage1Reused: report?.stage1?.reused, stage2Seconds: report?.stage2?.seconds, blocks: report?.stage2?.blocks,
    peakRssMiB: peakRss / 2 ** 20,
  };
}

/** The method, with the encoder's reference set where it matters. */
const labelOf = (r: Run): string => (r.reference && !SEED_FREE.has(r.method) ? `${r.method} (${r.reference})` : r.method);

const headline = (m: QualityMetrics): number => (m.task === 'classification' ? 100 * m.top1 : 100 * m.recallAt1);

function meanSpread(values: number[]): string {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, values.length - 1));
  return values.length > 1 ? `${mean.toFixed(2)} ± ${sd.toFixed(2)}` : mean.toFixed(2);
}

/** The ladder's order, for methods and bit widths found in the runs (this sitting's and included ones). */
const LADDER = ['rtn', 'calib', 'mse', 'fisher_diag', 'fisher_lr', 'fisher_brecq', 'fisher_dplr', 'fimaq'];
const inOrder = (found: string[], order: string[]): string[] => [...new Set(found)].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));

function classificationTable(runs: Run[]): void {
  const bitWidths = inOrder(runs.map((r) => r.bits), ['w8a8', 'w6a6', 'w4a8', 'w4a4', 'w3a3']);
  out(`\n| method | ${bitWidths.map((b) => `${b.toUpperCase()} simulated | ${b.toUpperCase()} exported`).join(' | ')} |`);
  out(`|---|${bitWidths.map(() => '---|---').join('|')}|`);
  out(`| FP32 | ${bitWidths.map(() => `${headline(runs[0].fp).toFixed(2)} | ${headline(runs[0].fp).toFixed(2)}`).join(' | ')} |`);
  for (const method of inOrder(runs.map((r) => r.method), LADDER)) {
    const cells = bitWidths.map((bits) => {
      const mine = runs.filter((r) => r.method === method && r.bits === bits);
      return mine.length ? `${meanSpread(mine.map((r) => headline(r.simulated)))} | ${meanSpread(mine.map((r) => headline(r.exported)))}` : '- | -';
    });
    out(`| ${method} | ${cells.join(' | ')} |`);
  }
}

function retrievalTable(runs: Run[]): void {
  out('\n| method | bits | reference | R@1 | R@5 | mean cosine | (exported R@1) |');
  out('|---|---|---|---|---|---|---|');
  for (const r of runs) {
    const s = r.simulated;
    const e = r.exported;
    if (s.task !== 'retrieval' || e.task !== 'retrieval') continue;
    out(`| ${r.method} | ${r.bits} | ${SEED_FREE.has(r.method) ? '-' : r.reference ?? 'gallery'} | ${(100 * s.recallAt1).toFixed(2)} | ${(100 * s.recallAt5).toFixed(2)} | ${s.meanCosine.toFixed(4)} | ${(100 * e.recallAt1).toFixed(2)} |`);
  }
}

function costTable(runs: Run[]): void {
  out('\n| model | method | bits | seed | total s | CPU s | stage 1 s | stage 2 s | s/block (mean) | it/s (mean) | snapshot share | peak RSS MiB |');
  out('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of runs) {
    const blocks = r.blocks ?? [];
    const mean = (f: (b: NonNullable<Run['blocks']>[number]) => number): number => blocks.reduce((a, b) => a + f(b), 0) / Math.max(1, blocks.length);
    const snapshot = blocks.reduce((a, b) => a + b.snapshotSeconds, 0) / Math.max(1e-9, blocks.reduce((a, b) => a + b.seconds, 0));
    out(`| ${r.model} | ${labelOf(r)} | ${r.bits} | ${r.seed} | ${r.seconds.toFixed(1)} | ${r.cpuSeconds.toFixed(1)} | ${r.stage1Seconds === undefined ? '-' : `${r.stage1Seconds.toFixed(1)}${r.stage1Reused ? ' (reused)' : ''}`} | ${r.stage2Seconds?.toFixed(1) ?? '-'} | ${blocks.length ? mean((b) => b.seconds).toFixed(1) : '-'} | ${blocks.length ? mean((b) => b.iterationsPerSecond).toFixed(2) : '-'} | ${blocks.length ? `${(100 * snapshot).toFixed(1)}%` : '-'} | ${r.peakRssMiB.toFixed(0)} |`);
  }
}

async function main(): Promise<void> {
  out(`model ${MODEL}, data ${DATA}, bits ${BITS.join(',')}, methods ${METHODS.join(',')}, seeds ${SEEDS.join(',')}, iters ${ITERS}, calib ${CALIB}, recon ${RECON}, eval ${EVAL_LIMIT ?? 'all'} test images, onnxruntime threads ${THREADS || 'all cores'}`);
  out(`load average at start: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
  const runs: Run[] = INCLUDE.flatMap((file) => JSON.parse(fs.readFileSync(file, 'utf8')) as Run[]);
  if (INCLUDE.length) out(`${runs.length} earlier runs included from ${INCLUDE.join(', ')}`);
  const record = (run: Run): void => {
    runs.push(run);
    out(`  ${run.model} ${run.bits} ${labelOf(run)} seed ${run.seed}: simulated ${headline(run.simulated).toFixed(2)} exported ${headline(run.exported).toFixed(2)} (FP ${headline(run.fp).toFixed(2)}) in ${run.seconds.toFixed(0)} s`);
    if (OUT) fs.writeFileSync(OUT, JSON.stringify(runs, null, 2));
  };
  for (const bits of BITS) {
    for (const method of METHODS) {
      for (const seed of SEED_FREE.has(method) ? [0] : SEEDS) record(await runOne(MODEL, 'classification', bits, method, seed));
    }
  }
  const classification = runs.filter((r) => r.simulated.task === 'classification');
  if (classification.length) classificationTable(classification);
  if (EMB_MODEL) {
    for (const bits of BITS) {
      for (const method of ['rtn', 'calib']) record(await runOne(EMB_MODEL, 'retrieval', bits, method, SEEDS[0]));
      for (const reference of REFERENCES) record(await runOne(EMB_MODEL, 'retrieval', bits, 'fisher_dplr', SEEDS[0], reference));
    }
  }
  const retrieval = runs.filter((r) => r.simulated.task === 'retrieval');
  if (retrieval.length) retrievalTable(retrieval);
  costTable(runs);
  out(`load average at end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

main().then(() => clearInterval(sampler), (err: unknown) => {
  clearInterval(sampler);
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
