/**
 * The engine's library entry: ONNX bytes + calibration images in, QDQ ONNX bytes + a report out.
 * The CLI (`fimaq quantize`) and the job worker both call quantizeModel with a progress callback.
 */
import { InputError } from '../data/errors';
import * as tf from '@tensorflow/tfjs';
import { EngineBackend, initBackend } from './backend';
import { formatBits, parseBits } from './bits';
import { partitionBlocks } from './blocks';
import { chooseExportForm, type ExportForm, type FormChoice, type ProbeBatch } from './export/form-choice';
import { exportQdq } from './export/qdq';
import { ImageModel, loadImageModel } from './image-model';
import { ENGINE_METHODS, LoadedImages, MethodOptions, MethodProgress, MethodReport, methodFor, type MethodTable } from './methods';
import { QuantizedModel } from './simulation';
import { SiteOptions, findSites } from './sites';
import { workFraction, type StageWork } from './work';

/** One batch of preprocessed images, as the dataset layer yields them. */
export interface CalibrationBatch {
  data: Float32Array;
  dims: number[];
  /** Class index of each image, when the source is labeled. */
  labels?: Int32Array;
}

/** What quantizeModel reads calibration images from (the dataset layer's ImageDataset fits). */
export interface CalibrationSource {
  readonly size: number;
  /** Whether batches carry labels (class prototypes of retrieval models need them). */
  readonly hasLabels?: boolean;
  readonly description?: string;
  batches(options: { batchSize: number; limit?: number; offset?: number }): AsyncIterable<CalibrationBatch>;
}

export interface QuantizeOptions {
  /** The FP32 ONNX model. */
  model: Uint8Array;
  /** Name for messages (a path or registry id). */
  modelName?: string;
  calibration: CalibrationSource;
  /** "w4a4", "w3a3", "w4a8", ... */
  bits: string;
  /** A name in `methods`. */
  method: string;
  /** The methods to choose from; the engine's own (rtn) when absent. */
  methods?: MethodTable;
  /** Calibration images to use (default 128). */
  calibSize?: number;
  batchSize?: number;
  linearActivations?: SiteOptions['linearActivations'];
  attentionActivations?: SiteOptions['attentionActivations'];
  /**
   * Export form (exportQdq): 'ort' (default, onnxruntime's integer kernels), 'qdq' (standard
   * operators only), or 'fastest': each form timed on onnxruntime beside the FP32 model and the
   * fastest whose outputs match kept (export/form-choice.ts; the report says which and why).
   */
  exportForm?: ExportForm | 'fastest';
  backend?: EngineBackend;
  /** Method-specific settings (FIMA-Q: iters, rank, reconSize, seed, ...). */
  methodOptions?: MethodOptions;
}

export interface QuantizeProgress extends MethodProgress {
  /** The method's stages and the export, with their estimated costs. */
  work: readonly StageWork[];
  /** Overall fraction done, 0..1, by the estimated costs of `work`. */
  fraction: number;
}

export interface SiteReport {
  id: string;
  kind: string;
  position: string;
  operands: { tensor: string; role: string; bits: number; granularity: string }[];
}

export interface QuantizeReport {
  model: string;
  method: string;
  bits: string;
  backend: EngineBackend;
  calibrationImages: number;
  calibrationSource?: string;
  blocks: { name: string; kind: string; input: string; output: string; sites: SiteReport[] }[];
  seconds: { load: number; method: number; export: number };
  onnxBytes: number;
  /** What the method reported (FIMA-Q: per-block losses, stage times). */
  methodReport?: MethodReport;
  /** The form written and why (with exportForm 'fastest': the timings that chose it). */
  exportForm: Omit<FormChoice, 'onnx'> | { form: ExportForm; reason: string };
}

export interface QuantizeResult {
  onnx: Uint8Array;
  report: QuantizeReport;
  /** The loaded model and its simulated quantized twin, for evaluation; dispose when done. */
  imageModel: ImageModel;
  quantized: QuantizedModel;
}

async function loadCalibration(source: CalibrationSource, model: ImageModel, count: number, batchSize: number): Promise<LoadedImages> {
  if (!Number.isInteger(count) || count < 1) throw new InputError(`calibration size must be a positive integer, got ${count}`);
  if (source.size < count) {
    throw new InputError(`the calibration set has ${source.size} images, fewer than the ${count} requested; lower --calib-size or use a larger set`);
  }
  const { fixedBatch } = model.input;
  if (fixedBatch !== undefined && count % fixedBatch !== 0) {
    throw new InputError(`the model was exported with a fixed batch size of ${fixedBatch}; use a calibration size that is a multiple of it (got ${count})`);
  }
  const expected = model.input.chw;
  const batches: tf.Tensor[] = [];
  const labels: Int32Array[] = [];
  for await (const batch of source.batches({ batchSize, limit: count })) {
    const [n, ...item] = batch.dims;
    if (item.length !== 3 || item.some((d, i) => d !== expected[i])) {
      batches.forEach((b) => b.dispose());
      throw new InputError(`calibration images have shape [${batch.dims.slice(1).join(', ')}] per image but the model input '${model.input.name}' takes [${expected.join(', ')}] (NCHW); check --size, --channels and --layout`);
    }
    batches.push(tf.tensor(batch.data, [n, ...item]));
    if (batch.labels) labels.push(batch.labels);
  }
  const labelCount = labels.reduce((sum, l) => sum + l.length, 0);
  return { batches, labels: labelCount === count ? Int32Array.from(labels.flatMap((l) => Array.from(l))) : undefined };
}

function siteReport(site: QuantizedModel['sites'][number]): SiteReport {
  return {
    id: site.id,
    kind: site.kind,
    position: site.position,
    operands: site.operands.map((o) => ({ tensor: o.tensor, role: o.role, bits: o.bits, granularity: o.granularity })),
  };
}

/**
 * The export's estimated cost on the reference machine (see StageWork): timing both forms and the
 * parent on onnxruntime takes a second or two on the demo classifier; writing one form, a fraction.
 */
const EXPORT_SECONDS = { fastest: 1.2, single: 0.3 };

/** Images in the batch the export forms are timed on (the serving benchmark's batch 8). */
const FORM_PROBE_IMAGES = 8;

async function probeBatch(source: CalibrationSource, model: ImageModel): Promise<ProbeBatch> {
  const count = Math.min(model.input.fixedBatch ?? FORM_PROBE_IMAGES, source.size);
  for await (const batch of source.batches({ batchSize: count, limit: count })) return { data: batch.data, dims: batch.dims };
  throw new InputError('the calibration set yielded no images to time the export forms on');
}

export async function quantizeModel(options: QuantizeOptions, onProgress: (p: QuantizeProgress) => void = () => undefined): Promise<QuantizeResult> {
  const widths = parseBits(options.bits);
  const method = methodFor(options.methods ?? ENGINE_METHODS, options.method);
  const backend = await initBackend(options.backend);
  const modelName = options.modelName ?? 'model';
  const started = performance.now();
  const imageModel = loadImageModel(options.model, modelName);
  const sites = findSites(imageModel.program, {
    ...widths, linearActivations: options.linearActivations, attentionActivations: options.attentionActivations,
  });
  if (sites.length === 0) throw new InputError(`${modelName} has no quantizable site (no MatMul, Gemm or Conv on activations)`);
  const blocks = partitionBlocks(imageModel.program, sites);
  const quantized = new QuantizedModel(imageModel.program, sites);
  const calibSize = options.calibSize ?? 128;
  const batchSize = imageModel.input.fixedBatch ?? options.batchSize ?? 32;
  const calibration = (await loadCalibration(options.calibration, imageModel, calibSize, batchSize)).batches;
  const loaded = performance.now();
  const exportWork = (done: number): StageWork => ({ stage: 'export', done, total: 1, unitSeconds: options.exportForm === 'fastest' ? EXPORT_SECONDS.fastest : EXPORT_SECONDS.single });
  let methodWork: readonly StageWork[] = [];
  const report = (progress: Omit<MethodProgress, 'work'>, exported: number): void => {
    const work = [...methodWork, exportWork(exported)];
    onProgress({ ...progress, work, fraction: workFraction(work) });
  };
  let methodReport: MethodReport | void;
  try {
    methodReport = await method({
      model: imageModel,
      quantized,
      blocks,
      calibration,
      sourceSize: options.calibration.size,
      sourceHasLabels: options.calibration.hasLabels === true,
      loadImages: (count, batchSize) => loadCalibration(options.calibration, imageModel, count, batchSize),
      options: options.methodOptions ?? {},
      onProgress: (p) => {
        methodWork = p.work;
        report(p, 0);
      },
    });
  } finally {
    calibration.forEach((t) => t.dispose());
  }
  const learned = performance.now();
  // The method is done with every stage it announced, whatever its last report said.
  methodWork = methodWork.map((w) => ({ ...w, done: w.total }));
  report({ stage: 'export', done: 0, total: 1 }, 0);
  const metadata = { method: options.method, bits: formatBits(widths) };
  let onnx: Uint8Array;
  let exportForm: QuantizeReport['exportForm'];
  if (options.exportForm === 'fastest') {
    report({ stage: 'choose-form', done: 0, total: 1, detail: 'timing the export forms on onnxruntime' }, 0);
    const { onnx: chosen, ...choice } = await chooseExportForm(quantized, metadata, await probeBatch(options.calibration, imageModel), { parent: options.model });
    onnx = chosen;
    exportForm = choice;
  } else {
    const form = options.exportForm ?? 'ort';
    onnx = exportQdq(quantized, metadata, { form });
    exportForm = { form, reason: 'requested' };
  }
  const exported = performance.now();
  report({ stage: 'export', done: 1, total: 1 }, 1);
  return {
    onnx,
    imageModel,
    quantized,
    report: {
      model: modelName,
      method: options.method,
      bits: formatBits(widths),
      backend,
      calibrationImages: calibSize,
      calibrationSource: options.calibration.description,
      blocks: blocks.map((b) => ({ name: b.name, kind: b.kind, input: b.input, output: b.output, sites: b.sites.map(siteReport) })),
      seconds: { load: (loaded - started) / 1000, method: (learned - loaded) / 1000, export: (exported - learned) / 1000 },
      onnxBytes: onnx.length,
      exportForm,
      ...(methodReport ? { methodReport } : {}),
    },
  };
}
