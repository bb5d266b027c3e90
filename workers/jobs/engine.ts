/**
 * What the worker runtime asks of a quantization engine, and the default engine: the library
 * entry in `workers/engine/quantize-model.ts`. `WORKER_ENGINE_MODULE` names another module with
 * an `engine` export (an experimental engine, or a stand-in with predictable timing in tests).
 */
import path from 'node:path';
import type { EngineProgress, RetrievalReference } from '../common/jobs/messages';
import type { Preprocessing } from '../common/preprocessing';
import { openDataset } from '../data';
import type { StageWork } from '../engine/work';
import { quantizeModel } from '../quantization';

/** The engine's progress, with its stages when it knows them (the worker's ETA is built from them). */
export interface EngineReport extends EngineProgress {
  work?: readonly StageWork[];
}

export interface EngineRequest {
  model: Uint8Array;
  modelName: string;
  preprocessing: Preprocessing;
  task: 'CLASSIFICATION' | 'RETRIEVAL';
  /** NPY images (float32 in [0, 1]) the control plane packed from the chosen calibration set. */
  calibrationPath: string;
  /** Its labels (an int32 NPY), when the set has them: class prototypes need them. */
  calibrationLabelsPath?: string;
  /** Retrieval models: what the reconstruction's logits compare embeddings with (default gallery). */
  reference?: RetrievalReference;
  /** Lower case, as the engine names them: `w4a4`, `fimaq`, `rtn`. */
  bits: string;
  method: string;
  calibSize: number;
  reconSize: number;
  iters: number;
  rank: number;
  seed: number;
  /**
   * Called often with the engine's own progress (0..100 of the engine's work; the worker places
   * it among the job's stages); throwing from it (cancellation, shutdown) stops the engine.
   */
  onProgress: (progress: EngineReport) => void;
}

export interface EngineOutput {
  onnx: Uint8Array;
  /** The configuration as run (recorded on the variant). */
  config: Record<string, unknown>;
}

export type QuantizationEngine = (request: EngineRequest) => Promise<EngineOutput>;

/** Images per reconstruction step (FIMA-Q's default), fewer when the reconstruction set is smaller. */
const RECONSTRUCTION_BATCH = 32;

export const libraryEngine: QuantizationEngine = async (request) => {
  const calibration = await openDataset({ path: request.calibrationPath, format: 'npy', labelsPath: request.calibrationLabelsPath }, request.preprocessing);
  const result = await quantizeModel(
    {
      model: request.model,
      modelName: request.modelName,
      calibration,
      bits: request.bits,
      method: request.method,
      calibSize: request.calibSize,
      // The variant is served in whichever form onnxruntime runs fastest with the same outputs.
      exportForm: 'fastest',
      methodOptions: {
        task: request.task === 'CLASSIFICATION' ? 'classification' : 'retrieval',
        ...(request.task === 'RETRIEVAL' ? { reference: { kind: request.reference ?? 'gallery' } } : {}),
        iters: request.iters,
        rank: request.rank,
        reconSize: request.reconSize,
        seed: request.seed,
        batchSize: Math.min(RECONSTRUCTION_BATCH, request.reconSize),
      },
    },
    (p) => request.onProgress({
      stage: p.stage,
      ...(p.blockIndex !== undefined && p.blockCount ? { block: p.blockIndex + 1, blocks: p.blockCount } : {}),
      ...(p.iteration !== undefined ? { iteration: p.iteration, iterations: p.iterations } : {}),
      progress: 100 * p.fraction,
      work: p.work,
      message: p.detail,
      ...(p.milestone ? { milestone: true } : {}),
    }),
  );
  result.quantized.dispose();
  const { report } = result;
  return {
    onnx: result.onnx,
    config: {
      method: report.method,
      bits: report.bits,
      backend: report.backend,
      calibrationImages: report.calibrationImages,
      reconSize: request.reconSize,
      iters: request.iters,
      rank: request.rank,
      seed: request.seed,
      blocks: report.blocks.length,
      seconds: report.seconds,
      // Which form the variant is served in, and the timings that chose it.
      exportForm: report.exportForm,
      ...(request.task === 'RETRIEVAL' ? { reference: request.reference ?? 'gallery' } : {}),
      ...(report.methodReport ? { methodReport: report.methodReport } : {}),
    },
  };
};

/** The engine a worker process runs: the library's, unless a module is configured. */
export function loadEngine(modulePath: string | undefined): QuantizationEngine {
  if (!modulePath) return libraryEngine;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require(path.resolve(modulePath)) as { engine?: unknown };
  if (typeof loaded.engine !== 'function') throw new Error(`WORKER_ENGINE_MODULE ${modulePath} has no "engine" function export`);
  return loaded.engine as QuantizationEngine;
}
