/**
 * How a variant's answer to one row fares against the ground truth sent later with /feedback.
 * Pure math, the definitions offline evaluation (workers/eval/retrieval.ts) uses.
 */

/** What a variant answered for one row: its top-1 class (classification) or its top-k gallery ids, best first (retrieval). */
export type RowAnswer = number | readonly string[];

/** The ground truth of one row: its class, or the gallery ids relevant to the query. */
export type RowTruth = number | ReadonlySet<string>;

export interface RowScore {
  /** Classification: the top-1 class is the true one; retrieval: a relevant item is among the top k (hit-based recall@k). */
  hit: boolean;
  /** Retrieval: AP@k of the ranked neighbours. */
  averagePrecision?: number;
}

/**
 * AP@k = (1 / min(k, |relevant|)) · Σ_{i≤k} precision@i · rel_i, k the length of the ranked list:
 * 1 when every relevant item that fits in k leads the list.
 */
export function averagePrecisionAtK(ranked: readonly string[], relevant: ReadonlySet<string>): number {
  const denominator = Math.min(ranked.length, relevant.size);
  if (denominator === 0) return 0;
  let hits = 0;
  let sum = 0;
  ranked.forEach((id, i) => {
    if (!relevant.has(id)) return;
    hits++;
    sum += hits / (i + 1);
  });
  return sum / denominator;
}

export function scoreRow(answer: RowAnswer, truth: RowTruth): RowScore {
  if (typeof answer === 'number' || typeof truth === 'number') return { hit: answer === truth };
  return { hit: answer.some((id) => truth.has(id)), averagePrecision: averagePrecisionAtK(answer, truth) };
}

/**
 * Feedback rows both the answering variant and a shadow predicted, by who got them right, and for
 * retrieval the shadow's AP@k minus the answering variant's per row (a paired difference of mAP@k).
 */
export interface PairedOutcome {
  both: number;
  primaryOnly: number;
  shadowOnly: number;
  neither: number;
  averagePrecisionDeltas: number[];
}

export function pairedOutcome(primary: readonly RowScore[], shadow: readonly RowScore[]): PairedOutcome {
  const outcome: PairedOutcome = { both: 0, primaryOnly: 0, shadowOnly: 0, neither: 0, averagePrecisionDeltas: [] };
  primary.forEach((p, i) => {
    const s = shadow[i];
    if (p.hit && s.hit) outcome.both++;
    else if (p.hit) outcome.primaryOnly++;
    else if (s.hit) outcome.shadowOnly++;
    else outcome.neither++;
    if (p.averagePrecision !== undefined && s.averagePrecision !== undefined) outcome.averagePrecisionDeltas.push(s.averagePrecision - p.averagePrecision);
  });
  return outcome;
}
