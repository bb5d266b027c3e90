/**
 * What `fimaq quantize` needs from FIMA-Q beyond the engine entry: method options from the flags
 * and model card, and the side-by-side evaluation of the result (--eval).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelCard } from '../common/model-card';
import type { Preprocessing } from '../common/preprocessing';
import { datasetSpecFromOptions, InputError, openDataset, type DatasetCliOptions, type DatasetSplit } from '../data';
import { parseNpy } from '../data/npy';
import type { QuantizeResult } from '../engine/quantize-model';
import type { EvaluationTask } from '../eval/evaluate';
import { OnnxImageModel } from '../eval/onnx-model';
import { evaluateQuantized, type QuantizedEvaluation } from './evaluate-quantized';
import type { FimaqOptions, ReferenceSet } from './options';

export type { QuantizedEvaluation };

export interface FimaqCliFlags {
  iters?: number;
  rank?: number;
  reconSize?: number;
  seed?: number;
  reference?: string;
  threads?: number;
}

function referenceFromFlag(flag: string | undefined): ReferenceSet | undefined {
  if (flag === undefined) return undefined;
  if (flag === 'gallery') return { kind: 'gallery' };
  if (flag === 'prototypes') return { kind: 'prototypes' };
  if (!existsSync(flag)) throw new InputError(`--reference must be "gallery", "prototypes" or an .npy file of embeddings; ${flag} does not exist`);
  const array = parseNpy(readFileSync(flag), flag);
  if (array.shape.length !== 2 || !(array.data instanceof Float32Array || array.data instanceof Float64Array)) {
    throw new InputError(`${flag}: reference embeddings must be a float array of shape [M, D], got ${array.dtype} [${array.shape.join(', ')}]`);
  }
  return { kind: 'embeddings', vectors: Float32Array.from(array.data), dim: array.shape[1] };
}

/**
 * FIMA-Q method options from the flags and the model's task. A retrieval model needs a reference
 * set for its logits, so one is required before any work starts.
 */
export function fimaqOptionsFromCli(flags: FimaqCliFlags, task: EvaluationTask): Partial<FimaqOptions> {
  const reference = referenceFromFlag(flags.reference);
  if (task === 'retrieval' && !reference) {
    throw new InputError('this is a retrieval model (--task or its card): FIMA-Q needs a reference set for its logits; pass --reference gallery, --reference prototypes (labeled calibration data) or --reference embeddings.npy');
  }
  return { iters: flags.iters, rank: flags.rank, reconSize: flags.reconSize, seed: flags.seed, threads: flags.threads, task, reference };
}

export interface EvaluateFlags extends DatasetCliOptions {
  model: string;
  eval: string;
  evalSplit: DatasetSplit;
  evalLimit?: number;
  batchSize: number;
}

/** Evaluates FP (the input file), simulated and exported (the result's bytes) models on the --eval dataset. */
export async function evaluateQuantizedOutput(
  flags: EvaluateFlags,
  context: { pre: Preprocessing; card: ModelCard | undefined; task: EvaluationTask; result: QuantizeResult; onProgress?: (done: number, total: number) => void },
): Promise<QuantizedEvaluation> {
  const data = await openDataset(datasetSpecFromOptions({ ...flags, data: flags.eval, split: flags.evalSplit, labels: undefined }, context.card?.labels), context.pre);
  const directory = mkdtempSync(join(tmpdir(), 'fimaq-eval-'));
  const exportedPath = join(directory, 'quantized.onnx');
  writeFileSync(exportedPath, context.result.onnx);
  const fp = await OnnxImageModel.load(flags.model);
  const exported = await OnnxImageModel.load(exportedPath);
  try {
    context.onProgress?.(0, 1);
    const evaluation = await evaluateQuantized({
      task: context.task,
      data,
      fp,
      exported,
      imageModel: context.result.imageModel,
      quantized: context.result.quantized,
      inputName: context.pre.inputName,
      limit: flags.evalLimit,
    });
    context.onProgress?.(1, 1);
    return evaluation;
  } finally {
    await fp.close();
    await exported.close();
    rmSync(directory, { recursive: true, force: true });
  }
}
