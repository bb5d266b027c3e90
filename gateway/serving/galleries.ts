import { badInput, notFound } from '../errors';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { rowOf } from './comparison';
import { ModelGallery, type Neighbour } from './gallery';
import { imageTensor } from './image-input';
import type { ModelServingState } from './serving-catalog';
import type { VariantExecutor } from './variant-executor';

/** Rows per run when embedding a gallery. */
const EMBED_CHUNK = 32;

/** The retrieval galleries of every model, and the embedding of their images by each variant. */
export class Galleries {
  private readonly byModel = new Map<string, ModelGallery>();

  constructor(
    private readonly executor: VariantExecutor,
    private readonly options: { maxItems: number; maxImagePixels: number },
  ) {}

  /** Adds (or replaces) images, each checked to fit the model first, and embeds them with the variants that take traffic. */
  async add(state: ModelServingState, items: Array<{ id: string; image: Buffer }>): Promise<{ size: number }> {
    if (state.model.task !== 'RETRIEVAL') throw badInput(`model ${state.model.name} is a ${state.model.task} model; galleries belong to retrieval models`);
    for (const item of items) imageTensor(state.model, item.image, this.options.maxImagePixels, `gallery item "${item.id}"`);
    let gallery = this.byModel.get(state.model.id);
    if (!gallery) {
      gallery = new ModelGallery(this.options.maxItems);
      this.byModel.set(state.model.id, gallery);
    }
    gallery.upsert(items);
    // Embed now with the variants that take traffic, so the first search does not pay for it.
    const live = new Set([...state.policy.routes.map((r) => r.variantId), ...state.policy.shadows.map((s) => s.variantId)]);
    for (const variant of state.variants.filter((v) => live.has(v.id) && v.status === 'ready')) await this.rows(state, gallery, variant);
    return { size: gallery.size };
  }

  /** The model's gallery; NOT_FOUND until one was uploaded. */
  require(model: ModelRecord): ModelGallery {
    const gallery = this.byModel.get(model.id);
    if (!gallery || gallery.size === 0) throw notFound(`model ${model.name} has no gallery yet; POST images to /v2/models/${model.name}/gallery first`);
    return gallery;
  }

  /** The model's gallery when it has items; shadow comparisons of retrieval models use it when present. */
  find(model: ModelRecord): ModelGallery | undefined {
    const gallery = this.byModel.get(model.id);
    return gallery && gallery.size > 0 ? gallery : undefined;
  }

  /** The k items nearest to `query` as the variant embeds the gallery. */
  async search(state: ModelServingState, variant: VariantRecord, query: ArrayLike<number>, k: number): Promise<Neighbour[]> {
    const gallery = this.require(state.model);
    return gallery.search(await this.rows(state, gallery, variant), query, k);
  }

  /** The variant's normalized embedding of every gallery item, computing those it lacks. */
  rows(state: ModelServingState, gallery: ModelGallery, variant: VariantRecord): Promise<Float32Array[]> {
    return gallery.embeddings(variant.id, async (images) => {
      const rows: Float32Array[] = [];
      const output = variant.signature.outputs[0].name;
      const chunkSize = variant.signature.inputs[0].shape[0] === -1 ? EMBED_CHUNK : 1;
      for (let start = 0; start < images.length; start += chunkSize) {
        const chunk = images.slice(start, start + chunkSize).map((image) => imageTensor(state.model, image, this.options.maxImagePixels));
        const batch = { ...chunk[0], shape: [chunk.length, ...chunk[0].shape.slice(1)], data: concatFloat(chunk.map((t) => t.data as Float32Array)) };
        const [embedding] = await this.executor.run(state, variant, [batch], [output], 'primary');
        const values = embedding.data as Float32Array;
        for (let r = 0; r < chunk.length; r++) rows.push(rowOf(values, chunk.length, r));
      }
      return rows;
    });
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
