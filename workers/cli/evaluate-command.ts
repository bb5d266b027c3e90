import { existsSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { readModelCard, type ModelCard } from '../common/model-card';
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
  type ImageDataset,
} from '../data';
import { chooseTask, describeTaskChoice, evaluateModel, OnnxImageModel, type EvaluationResult, type EvaluationTask, type TaskChoice } from '../eval';
import type { CliIO } from './context';
import { stageProgress } from './progress';

interface EvaluateOptions extends DatasetCliOptions {
  model: string;
  task?: EvaluationTask;
  output?: string;
  gallery?: string;
  gallerySplit: DatasetSplit;
  limit?: number;
  batchSize: number;
  threads?: number;
  json?: boolean;
}

const HELP_AFTER = `${DATASET_FORMATS_HELP}

Task: --task, else the model card's; without a card an output of shape [N, C] whose C is the
number of classes the labels span is evaluated as classification (the report says so), anything
else asks for --task. Classification reports top-1/top-5 accuracy (output = logits, one per class);
retrieval reports recall@1, recall@5 and mAP of the --data images as queries against the
--gallery images, ranked by dot product of the model's (L2-normalized) embeddings,
relevance = same label. Without --gallery each query is ranked against the other queries.

Examples:
  fimaq evaluate --model deploy/demo/models/vit-fmnist-cls-op17.onnx --data /usr/share/datasets/fashion-mnist
  fimaq evaluate --model deploy/demo/models/vit-fmnist-emb-op17.onnx --data /usr/share/datasets/fashion-mnist \\
      --gallery /usr/share/datasets/fashion-mnist --gallery-split train --json`;

/** Registers `fimaq evaluate` on the program. */
export function registerEvaluateCommand(program: Command, io: CliIO): void {
  const cmd = program
    .command('evaluate')
    .description('evaluate an ONNX image model on a dataset (accuracy, or retrieval recall@k and mAP)')
    .requiredOption('--model <file>', 'ONNX model; its card <model>.card.json, when present, supplies preprocessing, task and labels');
  addDatasetOptions(cmd)
    .addOption(new Option('--task <task>', 'what to measure (default: the model card\'s; without a card, classification when the output is [N, C] and the labels span C classes)').choices(['classification', 'retrieval']))
    .option('--output <name>', 'model output to evaluate (default: the card\'s, else the first)')
    .option('--gallery <path>', 'retrieval gallery dataset (same formats as --data)')
    .addOption(new Option('--gallery-split <split>', 'IDX split of the gallery').choices(['train', 'test']).default('train'))
    .option('--limit <n>', 'evaluate only the first n images of --data', parsePositiveInt)
    .option('--batch-size <n>', 'images per inference batch', parsePositiveInt, 64)
    .option('--threads <n>', 'onnxruntime intra-op threads (default: all cores)', parsePositiveInt)
    .option('--json', 'print one JSON object on stdout, no progress bar')
    .addHelpText('after', HELP_AFTER)
    .action(async (options: EvaluateOptions) => {
      const report = await runEvaluate(options, io);
      io.stdout.write(options.json ? JSON.stringify(report) + '\n' : formatReport(report));
    });
}

export interface EvaluationReport {
  model: string;
  data: string;
  gallery?: string;
  task: TaskChoice;
  seconds: number;
  metrics: EvaluationResult;
}

async function runEvaluate(options: EvaluateOptions, io: CliIO): Promise<EvaluationReport> {
  if (!existsSync(options.model)) throw new InputError(`model not found: ${options.model}`);
  const card = readCard(options.model);
  const model = await OnnxImageModel.load(options.model, { threads: options.threads });
  try {
    const pre = resolvePreprocessing(options, card?.preprocessing ?? {}, model.preprocessingHints());
    model.checkInput(pre);
    const data = await openDataset(datasetSpecFromOptions(options, card?.labels), pre);
    const outputName = options.output ?? card?.output;
    if (outputName && !model.outputNames.includes(outputName)) {
      throw new InputError(`${options.model}: no output named "${outputName}" (outputs: ${model.outputNames.join(', ')})`);
    }
    const taskChoice = chooseTask(options.task, card, model.outputSignature(outputName), data);
    const { task } = taskChoice;
    const gallery = options.gallery ? await openGallery(options, pre, card) : undefined;
    if (gallery && task !== 'retrieval') throw new InputError('--gallery only applies to --task retrieval');
    const progress = stageProgress(io.stderr, !options.json);
    const started = Date.now();
    try {
      const metrics = await evaluateModel({
        model,
        pre,
        task,
        data,
        gallery,
        outputName,
        batchSize: options.batchSize,
        limit: options.limit,
        onProgress: (p) => progress.update(p.stage, p.done, p.total),
      });
      return { model: options.model, data: data.description, gallery: gallery?.description, task: taskChoice, seconds: (Date.now() - started) / 1000, metrics };
    } finally {
      progress.stop();
    }
  } finally {
    await model.close();
  }
}

function readCard(modelPath: string): ModelCard | undefined {
  try {
    return readModelCard(modelPath);
  } catch (err) {
    throw new InputError((err as Error).message);
  }
}

function openGallery(options: EvaluateOptions, pre: Preprocessing, card: ModelCard | undefined): Promise<ImageDataset> {
  const spec = datasetSpecFromOptions({ ...options, data: options.gallery as string, split: options.gallerySplit, labels: undefined }, card?.labels);
  return openDataset(spec, pre);
}

function formatReport(report: EvaluationReport): string {
  const m = report.metrics;
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
  const lines = [`model    ${report.model}`, `data     ${report.data}`];
  if (report.gallery) lines.push(`gallery  ${report.gallery}`);
  lines.push(`task     ${describeTaskChoice(report.task)}`);
  if (m.task === 'classification') {
    lines.push(`images   ${m.images}`, `top-1    ${pct(m.top1)}`, `top-5    ${pct(m.top5)}`);
  } else {
    lines.push(`queries  ${m.queries} vs gallery ${m.gallery}`, `R@1      ${pct(m.recallAt1)}`, `R@5      ${pct(m.recallAt5)}`, `mAP      ${pct(m.mAP)}`);
  }
  lines.push(`time     ${report.seconds.toFixed(1)} s`);
  return lines.join('\n') + '\n';
}

function parsePositiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${text}"`);
  return n;
}
