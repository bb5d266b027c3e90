import { performance } from 'node:perf_hooks';
import { badInput, GatewayError } from '../errors';
import type { ModelRecord, TensorSignature, VariantRecord } from '../registry/registry-types';
import { copyTensor, toFloat64, type Tensor } from '../tensors/tensor';
import type { EmbeddingProgress, Galleries } from './galleries';
import type { RowTruth } from './feedback-scores';
import type { GalleryImage, Neighbour } from './gallery';
import { imageTensor } from './image-input';
import { checkRequest } from './input-check';
import type { PredictionLedger } from './prediction-ledger';
import { routeCall, type RoutedCall } from './routing';
import { defaultVariant, variantByVersion, type ModelServingState, type ServingCatalog } from './serving-catalog';
import { statusOf } from './serving-errors';
import { refOf, type ServingMetrics } from './serving-metrics';
import type { ShadowMirror } from './shadow-mirror';
import type { VariantExecutor } from './variant-executor';
import { toProbabilities } from './comparison';

/** One inference call, as the protocol layer hands it over. */
export interface InferenceCall extends RoutedCall {
  modelName: string;
  requestId: string;
  inputs: Tensor[];
  /** Output names asked for; undefined or empty: all. */
  outputs?: string[];
}

/** An encoded image (PNG or JPEG) for a classifier's top classes or a retrieval model's nearest gallery items. */
export interface ImageCall extends RoutedCall {
  modelName: string;
  requestId: string;
  image: Buffer;
  /** How many classes (classify) or neighbours (search) to answer. */
  count: number;
}

export interface InferenceAnswer {
  model: ModelRecord;
  variant: VariantRecord;
  outputs: Tensor[];
  /** Retrieval with a gallery loaded: each row's nearest gallery items, best first (at least SERVING_RETRIEVAL_K). */
  neighbours?: Neighbour[][];
}

/** The truth /feedback sends: class names or indices per row, or (retrieval) the relevant gallery ids per row. */
export type FeedbackTruth = { labels: Array<string | number> } | { relevant: string[][] };

export interface LabelScore {
  label: string;
  probability: number;
}

/** What the protocol's model metadata says of a model, or of one of its versions. */
export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorSignature[];
  outputs: TensorSignature[];
  properties: Record<string, string>;
}

/** Where a call got before it failed, so its failure is counted against the right variant. */
interface Attempt {
  state?: ModelServingState;
  variant?: VariantRecord;
}

/**
 * The data plane as the protocol layer sees it, and all it sees (KServe's DataPlane): metadata,
 * readiness, inference, image classification and search, feedback, galleries, and the failures
 * of requests refused before they got here. Routing, shadow mirroring and galleries are modules
 * behind it; every request's outcome is counted here, once.
 */
export class DataPlane {
  constructor(
    private readonly catalog: ServingCatalog,
    private readonly executor: VariantExecutor,
    private readonly mirror: ShadowMirror,
    private readonly galleries: Galleries,
    private readonly ledger: PredictionLedger,
    private readonly metrics: ServingMetrics,
    private readonly options: { maxImagePixels: number; retrievalK: number },
  ) {}

  /** The model's inputs and outputs as the addressed version (or the policy's default variant) declares them. */
  async metadata(modelName: string, version?: string): Promise<ModelMetadata> {
    const state = await this.catalog.get(modelName);
    const variant = version === undefined ? defaultVariant(state) : variantByVersion(state, version);
    return {
      name: state.model.name,
      versions: state.variants.filter((v) => v.status === 'ready').map((v) => v.tag),
      platform: 'onnxruntime_onnx',
      inputs: variant?.signature.inputs ?? [],
      outputs: variant?.signature.outputs ?? [],
      properties: { task: state.model.task, ...(variant ? { variant_id: variant.id, precision: variant.precision } : {}) },
    };
  }

  /** Loads the addressed variant's session (so probes warm a fresh replica); UNAVAILABLE when it has none ready. */
  async ready(modelName: string, version?: string): Promise<{ name: string; version: string }> {
    const state = await this.catalog.get(modelName);
    const variant = version === undefined ? defaultVariant(state) : variantByVersion(state, version);
    if (!variant || variant.status !== 'ready') {
      throw new GatewayError('UNAVAILABLE', `model ${state.model.name}${version ? `/${version}` : ''} has no ready variant`);
    }
    await this.executor.load(state.model, variant);
    return { name: state.model.name, version: variant.tag };
  }

  /** Routes, checks, answers; then mirrors a copy to the policy's shadows off the caller's path. */
  infer(call: InferenceCall): Promise<InferenceAnswer> {
    return this.counted(async (attempt) => {
      attempt.state = await this.catalog.get(call.modelName);
      return this.answer(attempt, attempt.state, call);
    });
  }

  /** The classifier's `count` most probable labels for an image. */
  classify(call: ImageCall): Promise<{ answer: InferenceAnswer; items: LabelScore[] }> {
    return this.counted(async (attempt) => {
      const state = (attempt.state = await this.catalog.get(call.modelName));
      if (state.model.task !== 'CLASSIFICATION') throw badInput(`model ${state.model.name} is a ${state.model.task} model; use /search for retrieval`);
      const answer = await this.answer(attempt, state, { ...call, inputs: [imageTensor(state.model, call.image, this.options.maxImagePixels)] });
      const probabilities = toProbabilities(toFloat64(answer.outputs[0].data));
      const items = Array.from(probabilities, (probability, i) => ({ label: state.model.labels[i] ?? `class_${i}`, probability }))
        .sort((a, b) => b.probability - a.probability)
        .slice(0, call.count);
      return { answer, items };
    });
  }

  /** The retrieval model's `count` gallery items nearest to an image, as the answering variant embeds them. */
  search(call: ImageCall): Promise<{ answer: InferenceAnswer; items: Neighbour[] }> {
    return this.counted(async (attempt) => {
      const state = (attempt.state = await this.catalog.get(call.modelName));
      if (state.model.task !== 'RETRIEVAL') throw badInput(`model ${state.model.name} is a ${state.model.task} model; use /classify or /infer`);
      await this.galleries.require(state.model);
      const answer = await this.answer(attempt, state, { ...call, inputs: [imageTensor(state.model, call.image, this.options.maxImagePixels)] }, call.count);
      return { answer, items: (answer.neighbours as Neighbour[][])[0].slice(0, call.count) };
    });
  }

  /**
   * Ground truth for an earlier request: every variant that answered or shadowed it is scored.
   * Classification takes a class per row; retrieval the relevant gallery ids per row, or a class
   * per row that stands for the gallery items uploaded with that label.
   */
  async feedback(modelName: string, requestId: string, truth: FeedbackTruth): Promise<{ rows: number; variants: string[] }> {
    const state = await this.catalog.get(modelName);
    const rowsOfTruth = state.model.task === 'CLASSIFICATION' ? this.classesOf(state.model, truth) : await this.relevantSetsOf(state.model, truth);
    return this.ledger.feedback(requestId, state.model.id, (rows) => {
      if (rowsOfTruth.length !== rows) throw badInput(`request ${requestId} had ${rows} row(s); give exactly that many ${'relevant' in truth ? 'lists of relevant ids' : 'labels'} (got ${rowsOfTruth.length})`);
      return rowsOfTruth;
    });
  }

  private classesOf(model: ModelRecord, truth: FeedbackTruth): number[] {
    if (!('labels' in truth)) throw badInput(`model ${model.name} is a classifier: its feedback gives "label" or "labels", not relevant gallery ids`);
    return truth.labels.map((label) => {
      const index = typeof label === 'number' ? label : model.labels.indexOf(label);
      if (!Number.isInteger(index) || index < 0 || index >= model.labels.length) {
        throw badInput(`unknown label ${JSON.stringify(label)}; give a label name of model ${model.name} or a class index 0..${model.labels.length - 1}`);
      }
      return index;
    });
  }

  private async relevantSetsOf(model: ModelRecord, truth: FeedbackTruth): Promise<RowTruth[]> {
    const gallery = await this.galleries.load(model);
    if (gallery.size === 0) throw badInput(`model ${model.name} has no gallery: retrieval feedback names gallery items`);
    if ('labels' in truth) {
      return truth.labels.map((label) => {
        const ids = typeof label === 'string' ? gallery.idsLabelled(label) : [];
        if (ids.length === 0) throw badInput(`no gallery item of model ${model.name} has label ${JSON.stringify(label)}; give a label the gallery was uploaded with, or "relevant" ids`);
        return new Set(ids);
      });
    }
    const unknown = [...new Set(truth.relevant.flat())].filter((id) => !gallery.has(id));
    if (unknown.length > 0) throw badInput(`unknown gallery item id(s) of model ${model.name}: ${unknown.slice(0, 10).map((id) => JSON.stringify(id)).join(', ')}`);
    return truth.relevant.map((ids, i) => {
      if (ids.length === 0) throw badInput(`relevant[${i}] is empty; each row needs at least one relevant gallery id`);
      return new Set(ids);
    });
  }

  /** Adds images to a retrieval model's stored gallery as `actor` (audited); every replica sees them. */
  async addToGallery(modelName: string, items: readonly GalleryImage[], actor: string): Promise<{ size: number; revision: number }> {
    return this.galleries.add(await this.catalog.get(modelName), items, actor);
  }

  /** The stored gallery's size and revision, and each variant's embedding progress on this replica. */
  async gallery(modelName: string): Promise<{ size: number; revision: number; embeddings: EmbeddingProgress[] }> {
    const state = await this.catalog.get(modelName);
    if (state.model.task !== 'RETRIEVAL') throw badInput(`model ${state.model.name} is a ${state.model.task} model; galleries belong to retrieval models`);
    return { ...(await this.galleries.status(state.model)), embeddings: this.galleries.embeddingProgress(state.model) };
  }

  /**
   * Counts a request refused before it reached the data plane (unreadable, too large, not
   * authorized): under its model when the model exists. Failures raised here were counted already.
   */
  refused(modelName: string, error: unknown, status: number): void {
    if (this.metrics.isCounted(error)) return;
    this.catalog.get(modelName).then(
      () => this.metrics.failed({ modelName }, 'primary', status, error),
      () => this.metrics.failed(undefined, 'primary', status, error),
    );
  }

  /**
   * Runs the routed variant; a retrieval model with a gallery loaded also gets each row's
   * `neighbours` nearest items (at least SERVING_RETRIEVAL_K, kept for feedback and compared with
   * shadows). A call that asked for none (/infer) gets them only from a gallery the variant has
   * embedded already: its answer never waits for an embedding.
   */
  private async answer(attempt: Attempt, state: ModelServingState, call: InferenceCall, neighbours = 0): Promise<InferenceAnswer> {
    const started = performance.now();
    const { variant, shadowIds } = routeCall(state, call, (id) => this.executor.canServe(id));
    attempt.variant = variant;
    const outputNames = checkRequest(variant.signature, call.inputs, call.outputs);
    // The primary run takes ownership of the input arrays; shadows get their own copy.
    const shadowInputs = shadowIds.length > 0 ? call.inputs.map(copyTensor) : undefined;
    const outputs = await this.executor.run(state, variant, call.inputs, outputNames, 'primary');
    this.metrics.succeeded(refOf(state.model, variant), 'primary', performance.now() - started);
    const embeddings = state.model.task === 'RETRIEVAL' ? outputs.find((t) => t.name === variant.signature.outputs[0].name) : undefined;
    const k = Math.max(neighbours, this.options.retrievalK);
    const nearest = embeddings && (neighbours > 0 ? await this.galleries.nearest(state, variant, embeddings, k) : this.galleries.nearestIfEmbedded(state, variant, embeddings, k));
    const answer: InferenceAnswer = { model: state.model, variant, outputs, neighbours: nearest };
    this.ledger.recordAnswer(call.requestId, state.model, variant, 'primary', outputs, nearest);
    if (shadowInputs) setImmediate(() => void this.mirror.mirror(state, answer, shadowIds, shadowInputs, call.requestId));
    return answer;
  }

  private async counted<T>(work: (attempt: Attempt) => Promise<T>): Promise<T> {
    const attempt: Attempt = {};
    try {
      return await work(attempt);
    } catch (error) {
      const { state, variant } = attempt;
      // An unknown model is counted under "-": a caller's made-up names must not become label values.
      this.metrics.failed(state && variant ? refOf(state.model, variant) : state ? { modelName: state.model.name } : undefined, 'primary', statusOf(error), error);
      throw error;
    }
  }
}
