import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { readModelCard, writeModelCard, type ModelCard } from '../common/model-card';
import type { Preprocessing } from '../common/preprocessing';
import {
  addDatasetOptions,
  DATASET_FORMATS_HELP,
  datasetSpecFromOptions,
  InputError,
  openDataset,
  resolvePreprocessing,
  type DatasetCliOptions,
  type DatasetSplit,
} from '../data';
import { chooseTask, describeTaskChoice, type EvaluationTask, type TaskChoice } from '../eval';
import { fimaqOptionsFromCli, evaluateQuantizedOutput, type QuantizedEvaluation } from '../fimaq/cli-support';
import { initBackend, parseOnnx, type QuantizeReport } from '../engine';
import { methodNames, quantizeModel } from '../quantization';
import type { CliIO } from './context';
import { stageProgress } from './progress';

type QuantizeCliReport = QuantizeReport & { task: TaskChoice; evaluation?: QuantizedEvaluation };

interface QuantizeCliOptions extends Omit<DatasetCliOptions, 'data'> {
  model: string;
  task?: EvaluationTask;
  calib?: string;
  data?: string;
  bits: string;
  method: string;
  out: string;
  calibSize: number;
  batchSize: number;
  linearScales: 'per-tensor' | 'per-token';
  attentionScales: 'per-head' | 'per-tensor';
  exportForm: 'ort' | 'qdq' | 'fastest';
  json?: boolean;
  iters?: number;
  rank?: number;
  reconSize?: number;
  seed?: number;
  reference?: string;
  threads?: number;
  eval?: string;
  evalSplit: DatasetSplit;
  evalLimit?: number;
  report?: string;
}

const HELP_AFTER = `${DATASET_FORMATS_HELP}

--calib is the calibration dataset (same formats as fimaq evaluate's --data, which is accepted
as a synonym); --split defaults to train. The quantized model is written in QDQ form; with
--attention-scales per-tensor every matrix product runs on onnxruntime's integer kernels.
--export-form ort (the default) writes those products as onnxruntime's MatMulIntegerToFloat
(com.microsoft domain, bias folded in: fewer nodes, faster); --export-form qdq keeps standard
ONNX operators only (QuantizeLinear/DequantizeLinear around float MatMuls) for other runtimes;
--export-form fastest times both on onnxruntime (8 calibration images) and keeps the faster one
whose outputs match, as the job workers do; the report says which and why.
--method defaults to fimaq, as quantizeModel's does (rtn is the fast baseline).
A card <out>.card.json is written next to it (task, preprocessing, labels, parent, method), so
fimaq evaluate works on the result directly. The task is --task, else the model card's; without
a card an output [N, C] whose C is the number of classes the calibration labels span is taken as
classification (the report says so), anything else asks for --task.

Examples:
  fimaq quantize --model deploy/demo/models/vit-fmnist-cls-op17.onnx --calib /usr/share/datasets/fashion-mnist \\
      --bits w4a4 --method rtn --out /tmp/vit-w4a4.onnx
  fimaq evaluate --model /tmp/vit-w4a4.onnx --data /usr/share/datasets/fashion-mnist`;

/** Registers `fimaq quantize` on the program. */
export function registerQuantizeCommand(program: Command, io: CliIO): void {
  const cmd = program
    .command('quantize')
    .description('post-training quantization of an ONNX vision transformer into a QDQ ONNX model')
    .requiredOption('--model <file>', 'FP32 ONNX model; its card <model>.card.json, when present, supplies preprocessing')
    .option('--calib <path>', 'calibration dataset: IDX directory or file, image folder, or .npy file')
    .addOption(new Option('--task <task>', 'what the model does (default: the model card\'s, else inferred from its output and the labels)').choices(['classification', 'retrieval']));
  addDatasetOptions(cmd, { split: 'train' });
  // --calib names the dataset here; --data stays accepted for symmetry with fimaq evaluate.
  cmd.options.find((o) => o.long === '--data')?.makeOptionMandatory(false);
  cmd
    .requiredOption('--bits <spec>', 'weight and activation bit widths: w8a8, w6a6, w4a4, w3a3, or mixed such as w4a8')
    .addOption(new Option('--method <name>', 'quantization method').choices([...methodNames]).default('fimaq'))
    .requiredOption('--out <file>', 'where to write the quantized ONNX model')
    .option('--calib-size <n>', 'calibration images', parsePositiveInt, 128)
    .option('--batch-size <n>', 'images per engine batch', parsePositiveInt, 32)
    .addOption(new Option('--linear-scales <granularity>', 'activation scales of Linear inputs').choices(['per-tensor', 'per-token']).default('per-tensor'))
    .addOption(new Option('--attention-scales <granularity>', 'activation scales of attention matmul inputs').choices(['per-head', 'per-tensor']).default('per-head'))
    .addOption(new Option('--export-form <form>', 'ort: integer kernels of onnxruntime; qdq: standard ONNX operators only; fastest: the faster of both, timed').choices(['ort', 'qdq', 'fastest']).default('ort'))
    .option('--iters <n>', 'FIMA-Q: reconstruction iterations per block (default 1000)', parsePositiveInt)
    .option('--rank <k>', 'FIMA-Q: rank of the DPLR Fisher approximation (default 5)', parsePositiveInt)
    .option('--recon-size <n>', 'FIMA-Q: reconstruction images (default 1024)', parsePositiveInt)
    .option('--seed <n>', 'FIMA-Q: random seed (batches, QDrop); a seed makes runs repeat', parseNonNegativeInt)
    .option('--threads <n>', 'FIMA-Q: onnxruntime threads of the reconstruction (default 0: every core)', parseNonNegativeInt)
    .option('--reference <set>', 'FIMA-Q on retrieval models: "gallery" (FP embeddings of the reconstruction images), "prototypes" (their class means; needs labels) or an .npy file of reference embeddings [M, D]')
    .option('--eval <dataset>', 'after quantizing, evaluate FP, simulated and exported models on this dataset (same formats as --calib)')
    .addOption(new Option('--eval-split <split>', 'IDX split of --eval').choices(['train', 'test']).default('test'))
    .option('--eval-limit <n>', 'evaluate only the first n images of --eval', parsePositiveInt)
    .option('--report <file>', 'write the full report (per-block losses, stage times, evaluation) as JSON')
    .option('--json', 'print the report as one JSON object on stdout, no progress bar')
    .addHelpText('after', HELP_AFTER)
    .action(async (options: QuantizeCliOptions) => {
      const report = await runQuantize(options, io);
      io.stdout.write(options.json ? JSON.stringify(report) + '\n' : formatReport(report, options.out));
    });
}

/** What the ONNX input itself says about preprocessing (name, NCHW size). */
function inputHints(model: Uint8Array, path: string): Partial<Preprocessing> {
  const inputs = parseOnnx(model, path).inputs;
  if (inputs.length !== 1) return {};
  const [input] = inputs;
  const [, c, h, w] = input.shape ?? [];
  if (typeof c !== 'number' || typeof h !== 'number' || typeof w !== 'number') return { inputName: input.name };
  return { inputName: input.name, layout: 'NCHW', channels: c, height: h, width: w };
}

/** The declared shape of the output the quantizer works on: the card's, else the first. */
function outputSignature(model: Uint8Array, path: string, name: string | undefined): { name: string; shape: (number | string)[] | undefined } {
  const { outputs } = parseOnnx(model, path);
  const output = outputs.find((o) => o.name === name) ?? outputs[0];
  return { name: output.name, shape: output.shape };
}

/**
 * The card of a quantized model: the source card's description (not its figures, which were
 * measured on the source) or, without one, what this run established.
 */
function quantizedCard(
  source: ModelCard | undefined,
  facts: { model: string; task: EvaluationTask; pre: Preprocessing; labels: readonly string[] | undefined; method: string; bits: string },
): ModelCard {
  const { metrics: _sourceMetrics, ...description } = source ?? {};
  const parent = source?.name ?? basename(facts.model).replace(/\.onnx$/i, '');
  const labels = source?.labels ?? (facts.labels ? [...facts.labels] : undefined);
  return {
    ...description,
    name: `${parent}-${facts.method}-${facts.bits}`,
    task: facts.task === 'retrieval' ? 'RETRIEVAL' : 'CLASSIFICATION',
    preprocessing: facts.pre,
    ...(labels ? { labels } : {}),
    parent,
    quantization: { method: facts.method, bits: facts.bits },
  };
}

function readCard(modelPath: string): ModelCard | undefined {
  try {
    return readModelCard(modelPath);
  } catch (err) {
    throw new InputError((err as Error).message);
  }
}

async function runQuantize(options: QuantizeCliOptions, io: CliIO): Promise<QuantizeCliReport> {
  const dataPath = options.calib ?? options.data;
  if (!dataPath) throw new InputError('--calib <dataset> is required: the images to calibrate on');
  if (!existsSync(options.model)) throw new InputError(`model not found: ${options.model}`);
  const model = readFileSync(options.model);
  const card = readCard(options.model);
  const flags: DatasetCliOptions = { ...options, data: dataPath };
  const pre = resolvePreprocessing(flags, card?.preprocessing ?? {}, inputHints(model, options.model));
  const calibration = await openDataset(datasetSpecFromOptions(flags, card?.labels), pre);
  const taskChoice = chooseTask(options.task, card, outputSignature(model, options.model, card?.output), calibration);
  const methodOptions = fimaqOptionsFromCli(options, taskChoice.task);
  const backend = await initBackend();
  if (!options.json) io.stderr.write(`engine backend: ${backend}\n`);
  const progress = stageProgress(io.stderr, !options.json);
  try {
    const result = await quantizeModel(
      {
        model,
        modelName: options.model,
        calibration,
        bits: options.bits,
        method: options.method,
        calibSize: options.calibSize,
        batchSize: options.batchSize,
        linearActivations: options.linearScales,
        attentionActivations: options.attentionScales,
        exportForm: options.exportForm,
        methodOptions,
      },
      (p) => progress.update(p.block ? `${p.stage} ${p.block}` : p.stage, p.done, p.total, p.detail),
    );
    writeFileSync(options.out, result.onnx);
    const evaluation = options.eval
      ? await evaluateQuantizedOutput({ ...flags, model: options.model, eval: options.eval, evalSplit: options.evalSplit, evalLimit: options.evalLimit, batchSize: options.batchSize }, { pre, card, task: taskChoice.task, result, onProgress: (done, total) => progress.update('evaluate', done, total) })
      : undefined;
    result.quantized.dispose();
    writeModelCard(options.out, quantizedCard(card, { model: options.model, task: taskChoice.task, pre, labels: calibration.classNames, method: options.method, bits: result.report.bits }));
    const report = { ...result.report, task: taskChoice, ...(evaluation ? { evaluation } : {}) };
    if (options.report) writeFileSync(options.report, JSON.stringify(report, null, 2) + '\n');
    return report;
  } finally {
    progress.stop();
  }
}

function formatReport(report: QuantizeCliReport, out: string): string {
  const sites = report.blocks.reduce((n, b) => n + b.sites.length, 0);
  const lines = [
    `model     ${report.model}`,
    `method    ${report.method} ${report.bits} (engine backend: ${report.backend})`,
    `task      ${describeTaskChoice(report.task)}`,
    `calib     ${report.calibrationImages} images of ${report.calibrationSource ?? 'the dataset'}`,
    `sites     ${sites} in ${report.blocks.length} blocks: ${report.blocks.map((b) => `${b.name}(${b.sites.length})`).join(' ')}`,
    `out       ${out} (${(report.onnxBytes / 1024).toFixed(0)} KiB)`,
    `time      load ${report.seconds.load.toFixed(1)} s, ${report.method} ${report.seconds.method.toFixed(1)} s, export ${report.seconds.export.toFixed(1)} s`,
  ];
  if (report.evaluation) {
    const e = report.evaluation;
    const show = (m: QuantizedEvaluation['fp']): string => (m.task === 'classification'
      ? `top-1 ${(100 * m.top1).toFixed(2)}%`
      : `R@1 ${(100 * m.recallAt1).toFixed(2)}% R@5 ${(100 * m.recallAt5).toFixed(2)}% cos ${m.meanCosine.toFixed(4)}`);
    lines.push(`eval      ${e.data}: FP ${show(e.fp)} | simulated ${show(e.simulated)} | exported ${show(e.exported)}`);
  }
  return lines.join('\n') + '\n';
}

function parseNonNegativeInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${text}"`);
  return n;
}

function parsePositiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${text}"`);
  return n;
}
