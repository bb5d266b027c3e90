import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { ImageTooLargeError, imageToTensor } from '../../workers/data';
import { badInput, GatewayError, notFound } from '../errors';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import type { BatchingOptions } from './batching';
import { argmax, compareClassification, cosineSimilarity, overlapAtK, rowOf, toProbabilities } from './comparison';
import { ModelGallery, type Neighbour } from './gallery';
import { checkRequest } from './input-check';
import type { PredictionLedger } from './prediction-ledger';
import { variantByVersion, type ModelServingState, type ServingCatalog } from './serving-catalog';
import { OverloadedError, VariantFailedError } from './serving-errors';
import type { ServingMetrics, VariantRef } from './serving-metrics';
import { copyTensor, describeNonFinite, firstNonFinite, toFloat64, type Tensor } from '../tensors/tensor';
import { chooseRoute } from './traffic-policy';
import type { Lane, VariantSessions } from './variant-sessions';

/** One inference call, as the protocol layer hands it over. */
export interface InferenceCall {
  modelName: string;
  /** Variant tag or id from the version path; undefined lets the traffic policy choose. */
  version?: string;
  requestId: string;
  /** Reads a request header (lowercase name), for sticky routing. */
  header: (name: string) => string | undefined;
  inputs: Tensor[];
  /** Output names asked for; undefined or empty: all. */
  outputs?: string[];
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

/** Rows per run when embedding a gallery. */
const GALLERY_CHUNK = 32;
/** Neighbours compared between primary and shadow for retrieval models. */
const OVERLAP_K = 10;

export const refOf = (model: ModelRecord, variant: VariantRecord): VariantRef => ({
  modelId: model.id,
  modelName: model.name,
  variantId: variant.id,
  variantTag: variant.tag,
});

const statusOf = (error: unknown) => (error instanceof GatewayError ? error.httpStatus : 500);

/**
 * The data plane's use cases over the protocol-free tensor model: route by policy (or version
 * path), admit into the variant's queue, answer, then mirror to shadows and compare off the
 * caller's path. Feedback scores predictions; galleries serve retrieval models.
 */
export class InferenceService {
  private readonly galleries = new Map<string, ModelGallery>();

  constructor(
    private readonly catalog: ServingCatalog,
    private readonly sessions: VariantSessions,
    private readonly metrics: ServingMetrics,
    private readonly ledger: PredictionLedger,
    private readonly options: { defaultBatching: BatchingOptions; galleryMaxItems: number; maxImagePixels: number; logger: Logger },
  ) {}

  async infer(call: InferenceCall): Promise<InferenceAnswer> {
    const started = performance.now();
    let state: ModelServingState | undefined;
    let variant: VariantRecord | undefined;
    try {
      state = await this.catalog.get(call.modelName);
      const choice = this.choose(state, call);
      variant = choice.variant;
      const outputNames = checkRequest(variant.signature, call.inputs, call.outputs);
      // The primary run takes ownership of the input arrays; shadows get their own copy.
      const shadowInputs = choice.shadowIds.length > 0 ? call.inputs.map(copyTensor) : undefined;
      const outcome = await this.run(state, variant, call.inputs, outputNames, 'primary');
      this.metrics.succeeded(refOf(state.model, variant), 'primary', performance.now() - started);
      const answer = { model: state.model, variant, outputs: outcome };
      this.recordPrediction(call.requestId, state.model, variant, outcome);
      if (shadowInputs) {
        const mirrored = state;
        setImmediate(() => void this.mirror(mirrored, answer, choice.shadowIds, shadowInputs, call.requestId));
      }
      return answer;
    } catch (error) {
      this.metrics.failed(state && variant ? refOf(state.model, variant) : state ? { modelName: state.model.name } : undefined, 'primary', statusOf(error), error);
      throw error;
    }
  }

  /** An encoded image in, the top classes with probabilities out. */
  async classify(call: Omit<InferenceCall, 'inputs' | 'outputs'> & { image: Buffer; top: number }): Promise<{ answer: InferenceAnswer; predictions: LabelScore[] }> {
    const state = await this.catalog.get(call.modelName);
    if (state.model.task !== 'CLASSIFICATION') throw badInput(`model ${state.model.name} is a ${state.model.task} model; use /search for retrieval`);
    const answer = await this.infer({ ...call, inputs: [this.imageTensor(state.model, call.image)] });
    const probabilities = toProbabilities(toFloat64(answer.outputs[0].data));
    const predictions = Array.from(probabilities, (probability, i) => ({ label: state.model.labels[i] ?? `class_${i}`, probability }))
      .sort((a, b) => b.probability - a.probability)
      .slice(0, call.top);
    return { answer, predictions };
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
    const result = this.ledger.feedback(requestId, state.model.id, (rows) => {
      if (classes.length !== rows) throw badInput(`request ${requestId} had ${rows} row(s); give exactly that many labels (got ${classes.length})`);
      return classes;
    });
    return result;
  }

  async addToGallery(modelName: string, items: Array<{ id: string; image: Buffer }>): Promise<{ size: number }> {
    const state = await this.catalog.get(modelName);
    if (state.model.task !== 'RETRIEVAL') throw badInput(`model ${state.model.name} is a ${state.model.task} model; galleries belong to retrieval models`);
    for (const item of items) this.imageTensor(state.model, item.image, `gallery item "${item.id}"`);
    const gallery = this.galleryOf(state.model);
    gallery.upsert(items);
    // Embed now with the variants that take traffic, so the first search does not pay for it.
    const live = new Set([...state.policy.routes.map((r) => r.variantId), ...state.policy.shadows.map((s) => s.variantId)]);
    for (const variant of state.variants.filter((v) => live.has(v.id) && v.status === 'ready')) {
      await gallery.embeddings(variant.id, this.embedder(state, variant));
    }
    return { size: gallery.size };
  }

  /** The k gallery items nearest to the image, with the variant the policy (or path) chose. */
  async search(call: Omit<InferenceCall, 'inputs' | 'outputs'> & { image: Buffer; k: number }): Promise<{ answer: InferenceAnswer; results: Neighbour[] }> {
    const state = await this.catalog.get(call.modelName);
    if (state.model.task !== 'RETRIEVAL') throw badInput(`model ${state.model.name} is a ${state.model.task} model; use /classify or /infer`);
    const gallery = this.galleries.get(state.model.id);
    if (!gallery || gallery.size === 0) throw notFound(`model ${state.model.name} has no gallery yet; POST images to /v2/models/${state.model.name}/gallery first`);
    const answer = await this.infer({ ...call, inputs: [this.imageTensor(state.model, call.image)] });
    const rows = await gallery.embeddings(answer.variant.id, this.embedder(state, answer.variant));
    return { answer, results: gallery.search(rows, answer.outputs[0].data as Float32Array, call.k) };
  }

  /** The variant a call addresses: the one in its version path, or the policy's choice. */
  private choose(state: ModelServingState, call: InferenceCall): { variant: VariantRecord; shadowIds: string[] } {
    if (call.version !== undefined) {
      const variant = variantByVersion(state, call.version);
      if (variant.status !== 'ready') throw notFound(`variant ${state.model.name}/${variant.tag} is ${variant.status}, not serving`);
      return { variant, shadowIds: [] };
    }
    const byId = new Map(state.variants.map((v) => [v.id, v]));
    const servable = (id: string) => byId.get(id)?.status === 'ready' && !this.sessions.hasFailed(id);
    const key = state.policy.stickyHeader ? call.header(state.policy.stickyHeader) : undefined;
    const choice = chooseRoute(state.policy, servable, key);
    if (!choice) throw new GatewayError('UNAVAILABLE', `model ${state.model.name} has no ready variant in its traffic policy; set one with setTrafficPolicy`);
    return { variant: byId.get(choice.primaryId) as VariantRecord, shadowIds: choice.shadowIds };
  }

  private async run(state: ModelServingState, variant: VariantRecord, inputs: Tensor[], outputNames: string[], lane: Lane): Promise<Tensor[]> {
    const runner = await this.sessions.runner(state.model, variant, lane);
    runner.useBatching(state.policy.batching ?? this.options.defaultBatching);
    const outcome = await runner.submit(inputs, outputNames);
    // Inputs are checked finite before they queue, so a NaN or Infinity here is the variant's
    // fault: it fails the request and counts against that variant, never reaching a caller as null.
    for (const output of outcome.outputs) {
      const nonFinite = firstNonFinite(output);
      if (nonFinite) {
        throw new VariantFailedError(`variant ${state.model.name}/${variant.tag} produced a non-finite output from finite inputs: "${output.name}" ${describeNonFinite(output, nonFinite)}`);
      }
    }
    return outcome.outputs;
  }

  private async mirror(state: ModelServingState, answer: InferenceAnswer, shadowIds: string[], inputs: Tensor[], requestId: string): Promise<void> {
    await Promise.all(
      shadowIds.map(async (shadowId, i) => {
        const shadow = state.variants.find((v) => v.id === shadowId) as VariantRecord;
        const ref = refOf(state.model, shadow);
        const started = performance.now();
        // Copies are taken before any run starts: the last shadow may then take the originals.
        const own = i === shadowIds.length - 1 ? inputs : inputs.map(copyTensor);
        let outputs: Tensor[];
        try {
          outputs = await this.run(state, shadow, own, shadow.signature.outputs.map((t) => t.name), 'shadow');
        } catch (error) {
          if (error instanceof OverloadedError) {
            this.metrics.shadowSkipped(ref);
            return;
          }
          this.metrics.failed(ref, 'shadow', statusOf(error), error);
          this.options.logger.warn({ err: error, model: state.model.name, shadow: shadow.tag, requestId }, 'shadow request failed');
          return;
        }
        this.metrics.succeeded(ref, 'shadow', performance.now() - started);
        this.recordPrediction(requestId, state.model, shadow, outputs);
        await this.compare(state, answer, shadow, outputs).catch((error: unknown) =>
          this.options.logger.warn({ err: error, model: state.model.name, shadow: shadow.tag, requestId }, 'shadow comparison failed'),
        );
      }),
    );
  }

  private async compare(state: ModelServingState, answer: InferenceAnswer, shadow: VariantRecord, shadowOutputs: Tensor[]): Promise<void> {
    const primaryOut = answer.outputs.find((t) => t.name === answer.variant.signature.outputs[0].name);
    const shadowOut = shadowOutputs[0];
    if (!primaryOut || primaryOut.shape[0] !== shadowOut.shape[0]) return;
    const rows = primaryOut.shape[0];
    const p = toFloat64(primaryOut.data);
    const q = toFloat64(shadowOut.data);
    const primaryRef = refOf(state.model, answer.variant);
    const shadowRef = refOf(state.model, shadow);
    if (state.model.task === 'CLASSIFICATION') {
      for (let r = 0; r < rows; r++) this.metrics.comparedClassification(primaryRef, shadowRef, compareClassification(rowOf(p, rows, r), rowOf(q, rows, r)));
      return;
    }
    const gallery = this.galleries.get(state.model.id);
    const galleryRows = gallery && gallery.size > 0
      ? await Promise.all([gallery.embeddings(answer.variant.id, this.embedder(state, answer.variant)), gallery.embeddings(shadow.id, this.embedder(state, shadow))])
      : undefined;
    for (let r = 0; r < rows; r++) {
      const a = rowOf(p, rows, r);
      const b = rowOf(q, rows, r);
      let overlap: number | undefined;
      if (gallery && galleryRows) {
        const k = Math.min(OVERLAP_K, gallery.size);
        const ids = (rowsOfVariant: Float32Array[], query: Float64Array) => gallery.search(rowsOfVariant, query, k).map((n) => n.id);
        overlap = overlapAtK(ids(galleryRows[0], a), ids(galleryRows[1], b));
      }
      this.metrics.comparedEmbedding(primaryRef, shadowRef, cosineSimilarity(a, b), overlap);
    }
  }

  private recordPrediction(requestId: string, model: ModelRecord, variant: VariantRecord, outputs: Tensor[]): void {
    if (model.task !== 'CLASSIFICATION') return;
    const logits = outputs.find((t) => t.name === variant.signature.outputs[0].name);
    if (!logits) return;
    const rows = logits.shape[0];
    const values = toFloat64(logits.data);
    const top1 = Array.from({ length: rows }, (_, r) => argmax(rowOf(values, rows, r)));
    this.ledger.record(requestId, model.id, { variant: refOf(model, variant), top1 });
  }

  private imageTensor(model: ModelRecord, image: Buffer, source = 'the image'): Tensor {
    try {
      const { data, dims } = imageToTensor(image, model.preprocessing, source, this.options.maxImagePixels);
      return { name: model.preprocessing.inputName, datatype: 'FP32', shape: dims, data };
    } catch (error) {
      if (error instanceof ImageTooLargeError) throw new GatewayError('PAYLOAD_TOO_LARGE', `${error.message} (MAX_IMAGE_PIXELS)`);
      throw badInput((error as Error).message);
    }
  }

  private galleryOf(model: ModelRecord): ModelGallery {
    let gallery = this.galleries.get(model.id);
    if (!gallery) {
      gallery = new ModelGallery(this.options.galleryMaxItems);
      this.galleries.set(model.id, gallery);
    }
    return gallery;
  }

  private embedder(state: ModelServingState, variant: VariantRecord) {
    return async (images: readonly Buffer[]): Promise<Float32Array[]> => {
      const rows: Float32Array[] = [];
      const output = variant.signature.outputs[0].name;
      const chunkSize = variant.signature.inputs[0].shape[0] === -1 ? GALLERY_CHUNK : 1;
      for (let start = 0; start < images.length; start += chunkSize) {
        const chunk = images.slice(start, start + chunkSize).map((image) => this.imageTensor(state.model, image));
        const batch = { ...chunk[0], shape: [chunk.length, ...chunk[0].shape.slice(1)], data: concatFloat(chunk.map((t) => t.data as Float32Array)) };
        const [embedding] = await this.run(state, variant, [batch], [output], 'primary');
        const values = embedding.data as Float32Array;
        for (let r = 0; r < chunk.length; r++) rows.push(rowOf(values, chunk.length, r));
      }
      return rows;
    };
  }
}

function concatFloat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
