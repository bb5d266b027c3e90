import { conflict, notFound } from '../errors';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { toFloat64, type Tensor } from '../tensors/tensor';
import { argmax, rowOf } from './comparison';
import { pairedOutcome, scoreRow, type PairedOutcome, type RowAnswer, type RowScore, type RowTruth } from './feedback-scores';
import type { Neighbour } from './gallery';
import { refOf, type RequestRole, type VariantRef } from './serving-metrics';

/** What a variant answered for a request's rows, as its answer or as a shadow. */
export interface Prediction {
  variant: VariantRef;
  role: RequestRole;
  rows: RowAnswer[];
}

interface Entry {
  modelId: string;
  predictions: Prediction[];
  /** Set once feedback arrives: the true class or the relevant gallery ids per row. */
  truth?: RowTruth[];
}

export type Scorer = (variant: VariantRef, scores: readonly RowScore[]) => void;
/** Told, per shadow of a request with feedback, how it fared against the variant that answered. */
export type PairScorer = (primary: VariantRef, shadow: VariantRef, outcome: PairedOutcome) => void;

/**
 * Recent predictions by request id, so feedback (the truth, sent later) can score every variant
 * that answered or shadowed the request, and each shadow against the answering variant on the
 * same rows (paired outcomes, for McNemar's test and paired mAP differences). Classification keeps
 * the top-1 class per row, retrieval the top-k gallery ids. Bounded: the oldest requests are
 * forgotten first, and feedback for them is refused as unknown. Held in memory per gateway replica.
 */
export class PredictionLedger {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly capacity: number,
    /** Neighbours kept per retrieval row: the k of recall@k and mAP@k. */
    private readonly k: number,
    private readonly score: Scorer,
    private readonly scorePair: PairScorer,
  ) {}

  /**
   * Remembers a classification answer's top-1 class per row, or a retrieval answer's top-k
   * neighbours per row (`neighbours`, absent while the model has no gallery: nothing to score).
   */
  recordAnswer(requestId: string, model: ModelRecord, variant: VariantRecord, role: RequestRole, outputs: readonly Tensor[], neighbours?: readonly Neighbour[][]): void {
    const rows = model.task === 'CLASSIFICATION' ? top1Rows(variant, outputs) : neighbours?.map((row) => row.slice(0, this.k).map((n) => n.id));
    if (rows) this.record(requestId, model.id, { variant: refOf(model, variant), role, rows });
  }

  private record(requestId: string, modelId: string, prediction: Prediction): void {
    let entry = this.entries.get(requestId);
    if (!entry) {
      entry = { modelId, predictions: [] };
      this.entries.set(requestId, entry);
      if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    }
    entry.predictions.push(prediction);
    // A shadow that finishes after the feedback is scored on arrival.
    if (entry.truth) this.scorePrediction(entry, prediction);
  }

  /**
   * Scores every prediction of the request against the truth; each request takes feedback once.
   * `truth` may refuse (throw) after seeing the row count: then nothing is scored.
   */
  feedback(requestId: string, modelId: string, truth: (rows: number) => RowTruth[]): { rows: number; variants: string[] } {
    const entry = this.entries.get(requestId);
    if (!entry || entry.modelId !== modelId) {
      throw notFound(`no recent prediction with request id ${requestId} for this model (the gateway remembers the last ${this.capacity} requests)`);
    }
    if (entry.truth) throw conflict(`request ${requestId} already has feedback`);
    const rows = entry.predictions.find((p) => p.role === 'primary')?.rows.length ?? entry.predictions[0]?.rows.length ?? 0;
    entry.truth = truth(rows);
    for (const prediction of entry.predictions) this.scorePrediction(entry, prediction);
    return { rows, variants: entry.predictions.map((p) => p.variant.variantTag) };
  }

  private scorePrediction(entry: Entry, prediction: Prediction): void {
    const scores = scoresOf(prediction, entry.truth as RowTruth[]);
    this.score(prediction.variant, scores);
    // The primary is always recorded first (shadows run after it answered), so a shadow finds it here.
    const primary = prediction.role === 'shadow' ? entry.predictions.find((p) => p.role === 'primary') : undefined;
    if (primary) this.scorePair(primary.variant, prediction.variant, pairedOutcome(scoresOf(primary, entry.truth as RowTruth[]), scores));
  }
}

const scoresOf = (prediction: Prediction, truth: readonly RowTruth[]) => truth.map((row, i) => scoreRow(prediction.rows[i], row));

/** The top-1 class per row of a classifier's first output (logits or probabilities). */
function top1Rows(variant: VariantRecord, outputs: readonly Tensor[]): number[] | undefined {
  const logits = outputs.find((t) => t.name === variant.signature.outputs[0].name);
  if (!logits) return undefined;
  const rows = logits.shape[0];
  const values = toFloat64(logits.data);
  return Array.from({ length: rows }, (_, r) => argmax(rowOf(values, rows, r)));
}
