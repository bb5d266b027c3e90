import { conflict, notFound } from '../errors';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { toFloat64, type Tensor } from '../tensors/tensor';
import { argmax, rowOf } from './comparison';
import { refOf, type PairedOutcome, type RequestRole, type VariantRef } from './serving-metrics';

/** What a variant predicted for a request's rows (top-1 class index per row), as its answer or as a shadow. */
export interface Prediction {
  variant: VariantRef;
  role: RequestRole;
  top1: number[];
}

interface Entry {
  modelId: string;
  predictions: Prediction[];
  /** Set once feedback arrives: the true class index per row. */
  truth?: number[];
}

export type Scorer = (variant: VariantRef, correct: number, total: number) => void;
/** Told, per shadow of a request with feedback, how it fared against the variant that answered. */
export type PairScorer = (primary: VariantRef, shadow: VariantRef, outcome: PairedOutcome) => void;

/**
 * Recent predictions by request id, so feedback (the true label, sent later) can score every
 * variant that answered or shadowed the request, and each shadow against the answering variant
 * on the same rows (paired outcomes, for McNemar's test). Bounded: the oldest requests are forgotten
 * first, and feedback for them is refused as unknown. Held in memory per gateway replica.
 */
export class PredictionLedger {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly capacity: number,
    private readonly score: Scorer,
    private readonly scorePair: PairScorer,
  ) {}

  /** Remembers a classification answer's top-1 class per row; other tasks have nothing to score. */
  recordAnswer(requestId: string, model: ModelRecord, variant: VariantRecord, role: RequestRole, outputs: readonly Tensor[]): void {
    if (model.task !== 'CLASSIFICATION') return;
    const logits = outputs.find((t) => t.name === variant.signature.outputs[0].name);
    if (!logits) return;
    const rows = logits.shape[0];
    const values = toFloat64(logits.data);
    const top1 = Array.from({ length: rows }, (_, r) => argmax(rowOf(values, rows, r)));
    this.record(requestId, model.id, { variant: refOf(model, variant), role, top1 });
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

  /** Scores every prediction of the request against the truth; each request takes feedback once. */
  feedback(requestId: string, modelId: string, truth: (rows: number) => number[]): { rows: number; variants: string[] } {
    const entry = this.entries.get(requestId);
    if (!entry || entry.modelId !== modelId) {
      throw notFound(`no recent prediction with request id ${requestId} for this model (the gateway remembers the last ${this.capacity} requests)`);
    }
    if (entry.truth) throw conflict(`request ${requestId} already has feedback`);
    const rows = entry.predictions.find((p) => p.role === 'primary')?.top1.length ?? entry.predictions[0]?.top1.length ?? 0;
    entry.truth = truth(rows);
    for (const prediction of entry.predictions) this.scorePrediction(entry, prediction);
    return { rows, variants: entry.predictions.map((p) => p.variant.variantTag) };
  }

  private scorePrediction(entry: Entry, prediction: Prediction): void {
    const truth = entry.truth as number[];
    const correct = prediction.top1.filter((label, i) => label === truth[i]).length;
    this.score(prediction.variant, correct, truth.length);
    // The primary is always recorded first (shadows run after it answered), so a shadow finds it here.
    const primary = prediction.role === 'shadow' ? entry.predictions.find((p) => p.role === 'primary') : undefined;
    if (primary) this.scorePair(primary.variant, prediction.variant, pairedOutcome(primary.top1, prediction.top1, truth));
  }
}

function pairedOutcome(primary: readonly number[], shadow: readonly number[], truth: readonly number[]): PairedOutcome {
  const outcome = { both: 0, primaryOnly: 0, shadowOnly: 0, neither: 0 };
  truth.forEach((label, i) => {
    const p = primary[i] === label;
    const s = shadow[i] === label;
    if (p && s) outcome.both++;
    else if (p) outcome.primaryOnly++;
    else if (s) outcome.shadowOnly++;
    else outcome.neither++;
  });
  return outcome;
}
