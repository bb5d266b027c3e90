import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { copyTensor, toFloat64, type Tensor } from '../tensors/tensor';
import { compareClassification, cosineSimilarity, overlapAtK, rankCorrelationAtK, rowOf, type EmbeddingComparison } from './comparison';
import type { Galleries } from './galleries';
import type { PredictionLedger } from './prediction-ledger';
import type { ModelServingState } from './serving-catalog';
import { OverloadedError, statusOf } from './serving-errors';
import { refOf, type ServingMetrics } from './serving-metrics';
import type { VariantExecutor } from './variant-executor';

/** Neighbours compared between primary and shadow for retrieval models. */
const OVERLAP_K = 10;

/** What the caller was answered, which each shadow's outputs are compared against. */
export interface PrimaryAnswer {
  model: ModelRecord;
  variant: VariantRecord;
  outputs: Tensor[];
}

/**
 * Runs shadows on a copy of a request after its primary answered, off the caller's path, in the
 * shadow lane (a full shadow queue drops the copy), and compares each shadow with the primary:
 * classification rows by agreement, KL and top-1 probability; embeddings by cosine, and their gallery neighbours by overlap@k and rank correlation.
 */
export class ShadowMirror {
  constructor(
    private readonly executor: VariantExecutor,
    private readonly metrics: ServingMetrics,
    private readonly ledger: PredictionLedger,
    private readonly galleries: Galleries,
    private readonly logger: Logger,
  ) {}

  async mirror(state: ModelServingState, answer: PrimaryAnswer, shadowIds: string[], inputs: Tensor[], requestId: string): Promise<void> {
    await Promise.all(
      shadowIds.map(async (shadowId, i) => {
        const shadow = state.variants.find((v) => v.id === shadowId) as VariantRecord;
        const ref = refOf(state.model, shadow);
        const started = performance.now();
        // Copies are taken before any run starts: the last shadow may then take the originals.
        const own = i === shadowIds.length - 1 ? inputs : inputs.map(copyTensor);
        let outputs: Tensor[];
        try {
          outputs = await this.executor.run(state, shadow, own, shadow.signature.outputs.map((t) => t.name), 'shadow');
        } catch (error) {
          if (error instanceof OverloadedError) {
            this.metrics.shadowSkipped(ref);
            return;
          }
          this.metrics.failed(ref, 'shadow', statusOf(error), error);
          this.logger.warn({ err: error, model: state.model.name, shadow: shadow.tag, requestId }, 'shadow request failed');
          return;
        }
        this.metrics.succeeded(ref, 'shadow', performance.now() - started);
        this.ledger.recordAnswer(requestId, state.model, shadow, 'shadow', outputs);
        await this.compare(state, answer, shadow, outputs).catch((error: unknown) =>
          this.logger.warn({ err: error, model: state.model.name, shadow: shadow.tag, requestId }, 'shadow comparison failed'),
        );
      }),
    );
  }

  private async compare(state: ModelServingState, answer: PrimaryAnswer, shadow: VariantRecord, shadowOutputs: Tensor[]): Promise<void> {
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
    const gallery = this.galleries.find(state.model);
    const galleryRows = gallery && (await Promise.all([this.galleries.rows(state, gallery, answer.variant), this.galleries.rows(state, gallery, shadow)]));
    for (let r = 0; r < rows; r++) {
      const a = rowOf(p, rows, r);
      const b = rowOf(q, rows, r);
      const row: EmbeddingComparison = { cosine: cosineSimilarity(a, b) };
      if (gallery && galleryRows) {
        const k = Math.min(OVERLAP_K, gallery.size);
        const ids = (rowsOfVariant: Float32Array[], query: Float64Array) => gallery.search(rowsOfVariant, query, k).map((n) => n.id);
        const [primaryIds, shadowIds] = [ids(galleryRows[0], a), ids(galleryRows[1], b)];
        row.overlapAtK = overlapAtK(primaryIds, shadowIds);
        row.rankCorrelation = rankCorrelationAtK(primaryIds, shadowIds);
      }
      this.metrics.comparedEmbedding(primaryRef, shadowRef, row);
    }
  }
}
