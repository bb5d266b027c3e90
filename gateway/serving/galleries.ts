import type { Logger } from 'pino';
import type { ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import { badInput, notFound } from '../errors';
import type { ChangeFeed } from '../events/change-feed';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { toFloat64, type Tensor } from '../tensors/tensor';
import { rowOf } from './comparison';
import { ModelGallery, type GalleryImage, type Neighbour } from './gallery';
import type { GalleryRepository } from './gallery-repository';
import { imageTensor } from './image-input';
import { liveVariants, type ModelServingState } from './serving-catalog';
import type { VariantExecutor } from './variant-executor';

/** Rows per run when embedding a gallery. */
const EMBED_CHUNK = 32;
/**
 * Uploads on other replicas reach this one through the database, announced on the change feed
 * (which makes the next read reload at once); otherwise a gallery's revision is re-read at most
 * this often, and only items written since are loaded.
 */
const REFRESH_MS = 2000;

/** Change-feed topic of a model's stored gallery; the key is the model id. */
export const GALLERY_TOPIC = 'serving.gallery';

/** How far a variant's embedding of a model's gallery has come. */
export interface EmbeddingProgress {
  variantId: string;
  variantTag: string;
  embedded: number;
  total: number;
}

interface LoadedGallery {
  gallery: ModelGallery;
  revision: number;
  checkedAt: number;
  /** The reload under way, so concurrent requests wait for one instead of starting their own. */
  refreshing?: Promise<void>;
}

/**
 * The retrieval galleries of every model: items stored in the database with their images in the
 * artifact store, so they survive restarts and every replica serves the same gallery; held in
 * memory with each variant's embedding of them, computed when first needed or, for a variant
 * that starts serving, in the background with progress.
 */
export class Galleries {
  private readonly byModel = new Map<string, LoadedGallery>();
  private readonly progress = new Map<string, EmbeddingProgress>();
  /** Stops listening to the change feed. */
  readonly close: () => void;

  constructor(
    private readonly executor: VariantExecutor,
    private readonly repository: GalleryRepository,
    private readonly artifacts: ArtifactStore,
    private readonly changes: ChangeFeed,
    private readonly options: { maxItems: number; maxImagePixels: number; logger: Logger },
  ) {
    this.close = changes.subscribe(GALLERY_TOPIC, (modelId) => {
      const loaded = this.byModel.get(modelId);
      if (loaded) loaded.checkedAt = 0;
    });
  }

  /**
   * Adds (or replaces) images, each checked to fit the model first, as one new revision of the
   * stored gallery; then embeds them with the variants that take traffic.
   */
  async add(state: ModelServingState, items: readonly GalleryImage[], actor: string): Promise<{ size: number; revision: number }> {
    if (state.model.task !== 'RETRIEVAL') throw badInput(`model ${state.model.name} is a ${state.model.task} model; galleries belong to retrieval models`);
    for (const item of items) imageTensor(state.model, item.image, this.options.maxImagePixels, `gallery item "${item.id}"`);
    const loaded = await this.current(state.model);
    loaded.gallery.checkRoom(items.map((item) => item.id));
    const stored = [];
    for (const item of items) stored.push({ id: item.id, imageSha256: (await this.artifacts.put(item.image)).sha256, label: item.label ?? null });
    const revision = await this.repository.upsert(state.model.id, stored, actor);
    this.changes.publish(GALLERY_TOPIC, state.model.id);
    // A reload that started before the upsert cannot have seen it: wait it out, then load again.
    await loaded.refreshing;
    await this.refresh(state.model, loaded);
    // Embed now with the variants that take traffic, so the first search does not pay for it.
    for (const variant of liveVariants(state)) await this.rows(state, loaded.gallery, variant);
    return { size: loaded.gallery.size, revision };
  }

  /** The model's gallery as stored, brought up to date; empty until one was uploaded. */
  async load(model: ModelRecord): Promise<ModelGallery> {
    return (await this.current(model)).gallery;
  }

  /** The model's gallery as stored; NOT_FOUND until one was uploaded. */
  async require(model: ModelRecord): Promise<ModelGallery> {
    const gallery = await this.load(model);
    if (gallery.size === 0) throw notFound(`model ${model.name} has no gallery yet; POST images to /v2/models/${model.name}/gallery first`);
    return gallery;
  }

  /** The gallery held in memory, without asking the database: shadow comparisons use it when present. */
  find(model: ModelRecord): ModelGallery | undefined {
    const gallery = this.byModel.get(model.id)?.gallery;
    return gallery && gallery.size > 0 ? gallery : undefined;
  }

  /**
   * Each row's k nearest items, best first, as the variant embeds the gallery held in memory (a
   * search loads it first with `require`); undefined while the model has none loaded.
   */
  async nearest(state: ModelServingState, variant: VariantRecord, embeddings: Tensor, k: number): Promise<Neighbour[][] | undefined> {
    const gallery = this.find(state.model);
    return gallery && searchRows(gallery, await this.rows(state, gallery, variant), embeddings, k);
  }

  /**
   * The same, but only when the variant has already embedded the whole gallery: for calls that
   * did not ask for neighbours (/infer), which must not wait for an embedding nor fail with it.
   */
  nearestIfEmbedded(state: ModelServingState, variant: VariantRecord, embeddings: Tensor, k: number): Neighbour[][] | undefined {
    const gallery = this.find(state.model);
    const rows = gallery?.embedded(variant.id);
    if (!gallery || !rows || rows.length === 0 || rows[0].length !== embeddings.shape[1]) return undefined;
    return searchRows(gallery, rows, embeddings, k);
  }

  /**
   * Loads the model's stored gallery and embeds it with `variant` off the request path: for a
   * variant that starts serving, and for every live variant when the gateway starts.
   */
  embedInBackground(state: ModelServingState, variant: VariantRecord): void {
    if (state.model.task !== 'RETRIEVAL') return;
    this.current(state.model)
      .then(({ gallery }) => (gallery.size > 0 ? this.rows(state, gallery, variant) : undefined))
      .then(
        (rows) => rows && this.options.logger.info({ model: state.model.name, variant: variant.tag, items: rows.length }, 'gallery embedded'),
        (error: unknown) => this.options.logger.warn({ err: error, model: state.model.name, variant: variant.tag }, 'embedding the gallery failed'),
      );
  }

  /** Progress of every variant's embedding of the model's gallery, in the order they started. */
  embeddingProgress(model: ModelRecord): EmbeddingProgress[] {
    return [...this.progress.entries()].filter(([key]) => key.startsWith(`${model.id}|`)).map(([, value]) => ({ ...value }));
  }

  /**
   * Items and revision of the stored gallery, the figures GraphQL reports: read from the
   * database, so asking never waits for a replica to load the images.
   */
  status(model: ModelRecord): Promise<{ size: number; revision: number }> {
    return this.repository.summary(model.id);
  }

  /** The variant's normalized embedding of every gallery item, computing those it lacks. */
  rows(state: ModelServingState, gallery: ModelGallery, variant: VariantRecord): Promise<Float32Array[]> {
    const key = `${state.model.id}|${variant.id}`;
    return gallery.embeddings(variant.id, async (images) => {
      const progress: EmbeddingProgress = { variantId: variant.id, variantTag: variant.tag, embedded: gallery.size - images.length, total: gallery.size };
      this.progress.set(key, progress);
      const rows: Float32Array[] = [];
      const output = variant.signature.outputs[0].name;
      const chunkSize = variant.signature.inputs[0].shape[0] === -1 ? EMBED_CHUNK : 1;
      for (let start = 0; start < images.length; start += chunkSize) {
        const chunk = images.slice(start, start + chunkSize).map((image) => imageTensor(state.model, image, this.options.maxImagePixels));
        const batch = { ...chunk[0], shape: [chunk.length, ...chunk[0].shape.slice(1)], data: concatFloat(chunk.map((t) => t.data as Float32Array)) };
        const [embedding] = await this.executor.run(state, variant, [batch], [output], 'primary');
        const values = embedding.data as Float32Array;
        for (let r = 0; r < chunk.length; r++) rows.push(rowOf(values, chunk.length, r));
        progress.embedded += chunk.length;
      }
      return rows;
    });
  }

  /** The model's gallery, brought up to the stored revision when it was last checked long enough ago. */
  private async current(model: ModelRecord): Promise<LoadedGallery> {
    let loaded = this.byModel.get(model.id);
    if (!loaded) {
      loaded = { gallery: new ModelGallery(this.options.maxItems), revision: 0, checkedAt: 0 };
      this.byModel.set(model.id, loaded);
    }
    if (Date.now() - loaded.checkedAt >= REFRESH_MS) await this.refresh(model, loaded);
    return loaded;
  }

  private refresh(model: ModelRecord, loaded: LoadedGallery): Promise<void> {
    loaded.refreshing ??= (async () => {
      try {
        const items = await this.repository.itemsAfter(model.id, loaded.revision);
        const images = [];
        for (const item of items) images.push({ id: item.id, image: await this.artifacts.read(item.imageSha256), label: item.label });
        if (images.length > 0) loaded.gallery.upsert(images);
        loaded.revision = items.reduce((highest, item) => Math.max(highest, item.revision), loaded.revision);
        loaded.checkedAt = Date.now();
      } finally {
        loaded.refreshing = undefined;
      }
    })();
    return loaded.refreshing;
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

function searchRows(gallery: ModelGallery, rows: readonly Float32Array[], embeddings: Tensor, k: number): Neighbour[][] {
  const count = embeddings.shape[0];
  const values = toFloat64(embeddings.data);
  return Array.from({ length: count }, (_, r) => gallery.search(rows, rowOf(values, count, r), k));
}
