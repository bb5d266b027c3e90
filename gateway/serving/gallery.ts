import { badInput } from '../errors';

export interface Neighbour {
  id: string;
  score: number;
}

/** An image of the gallery as uploaded: its id, encoded image and optional class. */
export interface GalleryImage {
  id: string;
  image: Buffer;
  label?: string | null;
}

/** Computes L2-normalized embeddings of encoded images with one variant, in input order. */
export type Embedder = (images: readonly Buffer[]) => Promise<Float32Array[]>;

export function normalize(vector: ArrayLike<number>): Float32Array {
  let norm = 0;
  for (let i = 0; i < vector.length; i++) norm += vector[i] * vector[i];
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  const out = new Float32Array(vector.length);
  for (let i = 0; i < vector.length; i++) out[i] = vector[i] * scale;
  return out;
}

/**
 * A retrieval model's gallery: images by id and, per variant, their embeddings. Search is brute
 * force over normalized rows (cosine = dot product): about n·d multiply-adds per query, so it is
 * meant for galleries up to ~100k items at d ≤ 512 (tens of ms per query on one core); larger
 * collections want an approximate index. The encoded images are kept, not the embeddings alone,
 * so a variant added later embeds the same gallery on first use.
 */
export class ModelGallery {
  private readonly ids: string[] = [];
  private readonly position = new Map<string, number>();
  private readonly images: Buffer[] = [];
  private readonly labels: Array<string | null> = [];
  private readonly rows = new Map<string, Array<Float32Array | undefined>>();
  private readonly filling = new Map<string, Promise<Float32Array[]>>();

  constructor(private readonly maxItems: number) {}

  get size(): number {
    return this.ids.length;
  }

  /** Refuses items that would take the gallery past its size limit. */
  checkRoom(ids: readonly string[]): void {
    const added = new Set(ids.filter((id) => !this.position.has(id))).size;
    if (this.ids.length + added > this.maxItems) {
      throw badInput(`the gallery holds at most ${this.maxItems} items (SERVING_GALLERY_MAX_ITEMS); it has ${this.ids.length}, this adds ${added}`);
    }
  }

  /** Adds images, replacing those whose ids exist; refuses the lot when it would overflow. */
  upsert(items: readonly GalleryImage[]): void {
    this.checkRoom(items.map((item) => item.id));
    for (const { id, image, label } of items) {
      let index = this.position.get(id);
      if (index === undefined) {
        index = this.ids.length;
        this.ids.push(id);
        this.position.set(id, index);
      }
      this.images[index] = image;
      this.labels[index] = label ?? null;
      for (const variantRows of this.rows.values()) variantRows[index] = undefined;
    }
  }

  /** The variant's embedding of every item, computing those it lacks. */
  embeddings(variantId: string, embed: Embedder): Promise<Float32Array[]> {
    const previous = this.filling.get(variantId) ?? Promise.resolve([]);
    // One fill per variant at a time, so concurrent searches do not embed the same items twice.
    const next = previous.catch(() => []).then(() => this.fill(variantId, embed));
    this.filling.set(variantId, next);
    return next;
  }

  /** The variant's embedding of every item when it has them all already, else undefined (nothing is computed). */
  embedded(variantId: string): Float32Array[] | undefined {
    const variantRows = this.rows.get(variantId);
    if (!variantRows) return undefined;
    for (let i = 0; i < this.ids.length; i++) if (!variantRows[i]) return undefined;
    return variantRows.slice(0, this.ids.length) as Float32Array[];
  }

  has(id: string): boolean {
    return this.position.has(id);
  }

  /** Ids of the items uploaded with this label (feedback by class). */
  idsLabelled(label: string): string[] {
    return this.ids.filter((_, i) => this.labels[i] === label);
  }

  forgetVariant(variantId: string): void {
    this.rows.delete(variantId);
  }

  /** The k items most similar to the query (cosine), best first. */
  search(rows: readonly Float32Array[], query: ArrayLike<number>, k: number): Neighbour[] {
    const q = normalize(query);
    const best: Neighbour[] = [];
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (row.length !== q.length) throw badInput(`the query has ${q.length} dimensions but the gallery has ${row.length}`);
      let score = 0;
      for (let j = 0; j < q.length; j++) score += row[j] * q[j];
      if (best.length < k || score > best[best.length - 1].score) {
        const at = best.findIndex((n) => score > n.score);
        best.splice(at === -1 ? best.length : at, 0, { id: this.ids[i], score });
        if (best.length > k) best.pop();
      }
    }
    return best;
  }

  private async fill(variantId: string, embed: Embedder): Promise<Float32Array[]> {
    let variantRows = this.rows.get(variantId);
    if (!variantRows) {
      variantRows = [];
      this.rows.set(variantId, variantRows);
    }
    const missing: number[] = [];
    for (let i = 0; i < this.ids.length; i++) if (!variantRows[i]) missing.push(i);
    if (missing.length > 0) {
      const computed = await embed(missing.map((i) => this.images[i]));
      missing.forEach((index, j) => ((variantRows as Array<Float32Array | undefined>)[index] = normalize(computed[j])));
    }
    return variantRows.slice(0, this.ids.length) as Float32Array[];
  }
}
