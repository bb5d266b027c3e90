import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { copyTensor, toFloat64, type Tensor } from '../tensors/tensor';
import { compareClassification, cosineSimilarity, overlapAtK, rankCorrelationAtK, rowOf, type EmbeddingComparison } from './comparison';
import type { Galleries } from './galleries';
import type { Neighbour } from './gallery';
import type { PredictionLedger } from './prediction-ledger';
import type { ModelServingState } from './serving-catalog';
import { OverloadedError, statusOf } from './serving-errors';
import { refOf, type ServingMetrics } from './serving-metrics';
import type { VariantExecutor } from './variant-executor';

/** What the caller was answered, which each shadow's outputs are compared against. */
export interface PrimaryAnswer {
  model: ModelRecord;
  variant: VariantRecord;
  outputs: Tensor[];
  /** Retrieval with a gallery loaded: each row's nearest gallery items as the answering variant ranks them (at least k). */
  neighbours?: Neighbour[][];
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
    /** Neighbours compared per row (overlap@k, rank correlation) and kept for feedback. */
    private readonly k: number,
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
        // Shadows run every output in signature order: the first is the embedding.
        try {
          const neighbours = state.model.task === 'RETRIEVAL' ? await this.galleries.nearest(state, shadow, outputs[0], this.k) : undefined;
          this.ledger.recordAnswer(requestId, state.model, shadow, 'shadow', outputs, neighbours);
          this.compare(state, answer, shadow, outputs, neighbours);
        } catch (error) {
          this.logger.warn({ err: error, model: state.model.name, shadow: shadow.tag, requestId }, 'shadow comparison failed');
        }
      }),
    );
  }

  private compare(state: ModelServingState, answer: PrimaryAnswer, shadow: VariantRecord, shadowOutputs: Tensor[], shadowNeighbours: Neighbour[][] | undefined): void {
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
    const ids = (neighbours: Neighbour[][] | undefined, r: number) => neighbours?.[r]?.slice(0, this.k).map((n) => n.id);
    for (let r = 0; r < rows; r++) {
      const row: EmbeddingComparison = { cosine: cosineSimilarity(rowOf(p, rows, r), rowOf(q, rows, r)) };
      const primaryIds = ids(answer.neighbours, r);
      const shadowIds = ids(shadowNeighbours, r);
      if (primaryIds && shadowIds) {
        row.overlapAtK = overlapAtK(primaryIds, shadowIds);
        row.rankCorrelation = rankCorrelationAtK(primaryIds, shadowIds);
      }
      this.metrics.comparedEmbedding(primaryRef, shadowRef, row);
    }
  }
}
