import { performance } from 'node:perf_hooks';
import { badInput, GatewayError } from '../errors';
import type { ModelRecord, TensorSignature, VariantRecord } from '../registry/registry-types';
import { copyTensor, toFloat64, type Tensor } from '../tensors/tensor';
import type { EmbeddingProgress, Galleries } from './galleries';
import type { Neighbour } from './gallery';
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
}

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
    private readonly options: { maxImagePixels: number },
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
      const answer = await this.answer(attempt, state, { ...call, inputs: [imageTensor(state.model, call.image, this.options.maxImagePixels)] });
      return { answer, items: await this.galleries.search(state, answer.variant, answer.outputs[0].data as Float32Array, call.count) };
    });
  }

  /** Ground truth for an earlier request: every variant that answered or shadowed it is scored. */
  async feedback(modelName: string, requestId: string, labels: Array<string | number>): Promise<{ rows: number; variants: string[] }> {
    const state = await this.catalog.get(modelName);
    if (state.model.task !== 'CLASSIFICATION') throw badInput('feedback with labels applies to classification models');
    const classes = labels.map((label) => {
      const index = typeof label === 'number' ? label : state.model.labels.indexOf(label);
      if (!Number.isInteger(index) || index < 0 || index >= state.model.labels.length) {
        throw badInput(`unknown label ${JSON.stringify(label)}; give a label name of model ${modelName} or a class index 0..${state.model.labels.length - 1}`);
      }
      return index;
    });
    return this.ledger.feedback(requestId, state.model.id, (rows) => {
      if (classes.length !== rows) throw badInput(`request ${requestId} had ${rows} row(s); give exactly that many labels (got ${classes.length})`);
      return classes;
    });
  }

  /** Adds images to a retrieval model's stored gallery as `actor` (audited); every replica sees them. */
  async addToGallery(modelName: string, items: Array<{ id: string; image: Buffer }>, actor: string): Promise<{ size: number; revision: number }> {
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

  private async answer(attempt: Attempt, state: ModelServingState, call: InferenceCall): Promise<InferenceAnswer> {
    const started = performance.now();
    const { variant, shadowIds } = routeCall(state, call, (id) => this.executor.canServe(id));
    attempt.variant = variant;
    const outputNames = checkRequest(variant.signature, call.inputs, call.outputs);
    // The primary run takes ownership of the input arrays; shadows get their own copy.
    const shadowInputs = shadowIds.length > 0 ? call.inputs.map(copyTensor) : undefined;
    const outputs = await this.executor.run(state, variant, call.inputs, outputNames, 'primary');
    this.metrics.succeeded(refOf(state.model, variant), 'primary', performance.now() - started);
    const answer = { model: state.model, variant, outputs };
    this.ledger.recordAnswer(call.requestId, state.model, variant, 'primary', outputs);
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
