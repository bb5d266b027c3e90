import type { DatabaseHandle } from '../db/database';
import { badInput } from '../errors';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { addCounts, emptyCounts, type RollupCounts } from '../serving/metric-rollups';
import type { Serving } from '../serving/serving';
import type { MomentSums } from '../statistics/means';
import type { PairedCounts } from '../statistics/proportions';
import { rollupSeries } from './rollup-series';
import {
  compareAccuracy,
  compareErrorRates,
  compareLatency,
  compareMeanAveragePrecision,
  type LatencyComparison,
  type MeanComparison,
  type ProportionComparison,
} from './variant-comparison';
import { figuresOf, type VariantFigures } from './variant-figures';

/** Most steps one modelMetrics answer may hold (a day of minutes). */
export const MAX_STEPS = 1440;
const MINUTE_MS = 60_000;

export interface VariantSeries {
  variant: VariantRecord;
  /** One entry per step, zeros where the variant saw nothing. */
  steps: VariantFigures[];
  window: VariantFigures;
}

export interface ModelMetrics {
  model: ModelRecord;
  from: Date;
  to: Date;
  stepSeconds: number;
  /** Start of each step. */
  stepStarts: Date[];
  variants: VariantSeries[];
}

export interface VariantComparison {
  model: ModelRecord;
  a: VariantRecord;
  b: VariantRecord;
  from: Date;
  to: Date;
  confidence: number;
  aFigures: VariantFigures;
  bFigures: VariantFigures;
  accuracy: ProportionComparison;
  errorRate: ProportionComparison;
  latency: LatencyComparison;
  /** Retrieval models only: recall@k (the accuracy comparison: hits in the top k) and mAP@k. */
  retrieval: { k: number; recallAtK: ProportionComparison; mapAtK: MeanComparison } | null;
}

/** Rollups have minute resolution: a window starts on the minute that holds `from`. */
function window(from: Date, to: Date): { from: Date; to: Date } {
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) throw badInput('from and to must be valid times');
  const start = new Date(Math.floor(from.getTime() / MINUTE_MS) * MINUTE_MS);
  if (to.getTime() <= start.getTime()) throw badInput(`to (${to.toISOString()}) must be after from (${from.toISOString()})`);
  return { from: start, to };
}

function checkConfidence(confidence: number): void {
  if (!(confidence >= 0.5 && confidence < 1)) throw badInput(`confidence must lie in [0.5, 1), got ${confidence}`);
}

/** What a shadow's rollup row says of the rows it and the answering variant both got feedback for, from a's side. */
interface Pairs {
  /** onlyFirst: only a right. */
  counts: PairedCounts;
  /** Retrieval: AP@k of b minus AP@k of a per paired query. */
  averagePrecisionDeltas: MomentSums;
}

/**
 * Feedback rows both variants predicted. A shadow's rows count pairs with whichever variant
 * answered, so they are a's and b's pairs only when the other of the two answered every request
 * in the window; otherwise there are none.
 */
function pairsOf(a: RollupCounts, b: RollupCounts, answering: ReadonlySet<string>, aId: string, bId: string): Pairs | undefined {
  const only = (id: string) => answering.size === 1 && answering.has(id);
  const n = (c: RollupCounts) => c.pairedBoth + c.pairedPrimaryOnly + c.pairedShadowOnly + c.pairedNeither;
  if (only(aId)) {
    return {
      counts: { both: b.pairedBoth, onlyFirst: b.pairedPrimaryOnly, onlySecond: b.pairedShadowOnly, neither: b.pairedNeither },
      averagePrecisionDeltas: { n: n(b), sum: b.pairedApDeltaSum, sumOfSquares: b.pairedApDeltaSqSum },
    };
  }
  if (only(bId)) {
    // a shadowed b: its row holds a − b.
    return {
      counts: { both: a.pairedBoth, onlyFirst: a.pairedShadowOnly, onlySecond: a.pairedPrimaryOnly, neither: a.pairedNeither },
      averagePrecisionDeltas: { n: n(a), sum: -a.pairedApDeltaSum, sumOfSquares: a.pairedApDeltaSqSum },
    };
  }
  return undefined;
}

/**
 * The control plane's reads of serving figures over time: series per variant and step, and
 * the comparison of two variants, from the per-minute rollups with the shared statistics.
 */
export class MetricsQueries {
  constructor(
    private readonly database: DatabaseHandle,
    private readonly serving: Serving,
  ) {}

  async modelMetrics(modelName: string, from: Date, to: Date, stepSeconds: number, confidence: number): Promise<ModelMetrics> {
    const span = window(from, to);
    if (!Number.isInteger(stepSeconds) || stepSeconds < 60 || stepSeconds % 60 !== 0) {
      throw badInput(`step must be a whole number of minutes in seconds (60, 300, 3600, ...), got ${stepSeconds}`);
    }
    checkConfidence(confidence);
    const stepMs = stepSeconds * 1000;
    const count = Math.ceil((span.to.getTime() - span.from.getTime()) / stepMs);
    if (count > MAX_STEPS) throw badInput(`the window holds ${count} steps of ${stepSeconds} s; at most ${MAX_STEPS}: choose a larger step or a shorter window`);
    const state = await this.serving.catalog.get(modelName);
    // This replica's current minute is still in memory; write it so the answer includes it.
    await this.serving.flushRollups();
    const points = await rollupSeries(this.database, state.model.id, span.from, span.to, stepSeconds);

    const stepStarts = Array.from({ length: count }, (_, i) => new Date(span.from.getTime() + i * stepMs));
    const stepLength = (i: number) => (Math.min(span.to.getTime(), stepStarts[i].getTime() + stepMs) - stepStarts[i].getTime()) / 1000;
    const seen = new Set(points.map((p) => p.variantId));
    // Variants that served or could serve in the window, in registration order.
    const variants = state.variants.filter((v) => seen.has(v.id) || v.status === 'ready');
    const task = state.model.task;
    const k = this.serving.retrievalK;
    return {
      model: state.model,
      ...span,
      stepSeconds,
      stepStarts,
      variants: variants.map((variant) => {
        const perStep = stepStarts.map(() => emptyCounts());
        for (const point of points) if (point.variantId === variant.id && point.index < count) addCounts(perStep[point.index], point.counts);
        return {
          variant,
          steps: perStep.map((counts, i) => figuresOf(counts, stepLength(i), task, confidence, k)),
          window: figuresOf(perStep.reduce((into, counts) => addCounts(into, counts), emptyCounts()), (span.to.getTime() - span.from.getTime()) / 1000, task, confidence, k),
        };
      }),
    };
  }

  async compareVariants(modelName: string, aRef: string, bRef: string, from: Date, to: Date, confidence: number): Promise<VariantComparison> {
    const span = window(from, to);
    checkConfidence(confidence);
    const state = await this.serving.catalog.get(modelName);
    const find = (ref: string) => {
      const variant = state.variants.find((v) => v.tag === ref) ?? state.variants.find((v) => v.id === ref);
      if (!variant) throw badInput(`model ${modelName} has no variant "${ref}"`);
      return variant;
    };
    const a = find(aRef);
    const b = find(bRef);
    if (a.id === b.id) throw badInput('compare two different variants');
    await this.serving.flushRollups();
    const seconds = Math.ceil((span.to.getTime() - span.from.getTime()) / 1000);
    const points = await rollupSeries(this.database, state.model.id, span.from, span.to, seconds);
    const totals = (id: string) => points.filter((p) => p.variantId === id).reduce((into, p) => addCounts(into, p.counts), emptyCounts());
    const countsA = totals(a.id);
    const countsB = totals(b.id);
    const answering = new Set(points.filter((p) => p.counts.requests > 0).map((p) => p.variantId));
    const pairs = pairsOf(countsA, countsB, answering, a.id, b.id);
    const accuracy = compareAccuracy(countsA, countsB, confidence, pairs?.counts);
    const { task } = state.model;
    const k = this.serving.retrievalK;
    return {
      model: state.model,
      a,
      b,
      ...span,
      confidence,
      aFigures: figuresOf(countsA, seconds, task, confidence, k),
      bFigures: figuresOf(countsB, seconds, task, confidence, k),
      accuracy,
      errorRate: compareErrorRates(countsA, countsB, confidence),
      latency: compareLatency(countsA, countsB, confidence),
      retrieval: task === 'RETRIEVAL' ? { k, recallAtK: accuracy, mapAtK: compareMeanAveragePrecision(countsA, countsB, confidence, pairs?.averagePrecisionDeltas) } : null,
    };
  }
}
