import { addCounts, emptyCounts, ROLLUP_LATENCY_BUCKETS_MS, type RollupCounts, type RollupRow, type Histogram, type MomentSums, type PairedCounts } from '../../gateway/plugin-surface';

/** Running totals of the two variants of a rollout, summed over minutes and gateway replicas. */
export interface PairTotals {
  candidate: RollupCounts;
  baseline: RollupCounts;
}

/** What a step has seen: the figures every guardrail is judged on. */
export interface StepEvidence {
  /** Requests the model served (answered by either variant). */
  requests: number;
  /** Of those, answered by the candidate. */
  candidateAnswered: number;
  /** Requests the candidate ran, answered or shadowed; its failures among them. */
  candidateCalls: number;
  candidateErrors: number;
  /** Rows compared between the two (either one shadowing the other) and how many agreed on the top-1 class. */
  compared: number;
  agreed: number;
  /** Retrieval: the cosine of the two embeddings per compared row, and overlap@k of their gallery neighbours per row compared with a gallery. */
  cosine: MomentSums;
  overlap: MomentSums;
  /**
   * Feedback rows both predicted: `onlyFirst` is the candidate right alone, `onlySecond` the
   * baseline (classifiers: the top-1 class; retrieval: a relevant item in the top k).
   */
  paired: PairedCounts;
  /** End-to-end latencies of the requests each variant answered. */
  candidateLatency: Histogram;
  baselineLatency: Histogram;
}

/** The two variants' totals over the given rollup rows. */
export function totalsOf(rows: readonly RollupRow[], candidateId: string, baselineId: string): PairTotals {
  const totals = { candidate: emptyCounts(), baseline: emptyCounts() };
  for (const row of rows) {
    if (row.variantId === candidateId) addCounts(totals.candidate, row, 1);
    else if (row.variantId === baselineId) addCounts(totals.baseline, row, 1);
  }
  return totals;
}

/**
 * What happened between two readings of the running totals. Rollup rows only ever grow, so
 * `now − then` is exactly the traffic since `then` was read, whatever minutes it spans.
 */
export function since(now: PairTotals, then: PairTotals): PairTotals {
  const delta = { candidate: emptyCounts(), baseline: emptyCounts() };
  addCounts(delta.candidate, now.candidate, 1);
  addCounts(delta.candidate, then.candidate, -1);
  addCounts(delta.baseline, now.baseline, 1);
  addCounts(delta.baseline, then.baseline, -1);
  return delta;
}

/**
 * The step's evidence from its totals. Candidate and baseline each shadow the requests the other
 * answers, so comparisons and paired feedback land on both rows (a row is the shadow's): the
 * candidate's row holds (primary baseline, shadow candidate) and the baseline's row the reverse.
 */
export function evidenceOf({ candidate: c, baseline: b }: PairTotals): StepEvidence {
  return {
    requests: c.requests + b.requests,
    candidateAnswered: c.requests,
    candidateCalls: c.requests + c.shadowRequests,
    candidateErrors: c.errors + c.shadowErrors,
    compared: c.compared + b.compared,
    agreed: c.agreed + b.agreed,
    cosine: { n: c.compared + b.compared, sum: c.cosineSum + b.cosineSum, sumOfSquares: c.cosineSqSum + b.cosineSqSum },
    overlap: { n: c.overlapCompared + b.overlapCompared, sum: c.overlapSum + b.overlapSum, sumOfSquares: c.overlapSqSum + b.overlapSqSum },
    paired: {
      both: c.pairedBoth + b.pairedBoth,
      onlyFirst: c.pairedShadowOnly + b.pairedPrimaryOnly,
      onlySecond: c.pairedPrimaryOnly + b.pairedShadowOnly,
      neither: c.pairedNeither + b.pairedNeither,
    },
    candidateLatency: { bounds: ROLLUP_LATENCY_BUCKETS_MS, counts: [...c.latencyBuckets] },
    baselineLatency: { bounds: ROLLUP_LATENCY_BUCKETS_MS, counts: [...b.latencyBuckets] },
  };
}
