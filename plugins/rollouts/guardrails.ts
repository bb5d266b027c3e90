import { mcnemarExact, meanInterval, quantileRatio, pairedDifference, wilsonInterval, type Interval } from '../../gateway/plugin-surface';
import type { StepEvidence } from './rollout-evidence';
import type { Guardrails } from './rollout-plan';

export type GuardrailName = 'accuracy' | 'agreement' | 'overlap' | 'cosine' | 'recall' | 'latency' | 'errorRate';

/**
 * holds: the bound at the rollout's confidence shows the guardrail is met; violated: the bound
 * at the look's rollback confidence shows it is not; unknown: neither yet; inapplicable: this
 * step cannot measure it (no feedback, no latency of one side, no gallery to compare neighbours
 * in), or the model's task has no such figure (a retrieval model's agreement, a classifier's cosine).
 */
export type Verdict = 'holds' | 'violated' | 'unknown' | 'inapplicable';

export interface GuardrailFigure {
  guardrail: GuardrailName;
  verdict: Verdict;
  /** The measured figure (accuracy, recall: candidate − baseline) and its two-sided interval at the rollout's confidence. */
  estimate: number | null;
  lower: number | null;
  upper: number | null;
  /** The guardrail's limit, on the estimate's scale (accuracy: −maxAccuracyDrop, recall: −maxRecallDrop). */
  threshold: number;
  /** Observations behind the figure (rows compared, feedback pairs, requests). */
  samples: number;
  /** McNemar's one-sided p-value for "the candidate is less accurate" (accuracy, recall). */
  pValue: number | null;
  /** The feedback pairs behind a paired figure (accuracy, recall) by who was right; null for the others. */
  pairs: PairsByOutcome | null;
}

/** Rows both variants predicted with feedback, by who got them right. */
export interface PairsByOutcome {
  both: number;
  candidateOnly: number;
  baselineOnly: number;
  neither: number;
}

/** A test in one direction: is the figure on the good side of the threshold, at a confidence? */
interface Test {
  name: GuardrailName;
  threshold: number;
  samples: number;
  applicable: boolean;
  /** Higher figures are better (agreement, accuracy, overlap, cosine, recall) or worse (latency, error rate). */
  higherIsBetter: boolean;
  interval(confidence: number): Interval;
  pValue?: number;
  pairs?: PairsByOutcome;
}

const P99 = 0.99;

/** A difference of shares with no observations: anything from −1 to 1. */
const UNOBSERVED: Interval = { estimate: NaN, lower: -1, upper: 1 };

/**
 * The paired test of a drop (accuracy for classifiers, recall@k for encoders): the candidate's
 * share right minus the baseline's on the same feedback rows, Newcombe's interval, McNemar's p.
 * Without feedback it is inapplicable, unless the plan waits for feedback: then it is not conclusive.
 */
function pairedDrop(name: GuardrailName, maxDrop: number, evidence: StepEvidence, taskFits: boolean, requireFeedback: boolean): Test {
  const p = evidence.paired;
  const pairs = p.both + p.onlyFirst + p.onlySecond + p.neither;
  return {
    name, threshold: -maxDrop, samples: pairs, applicable: taskFits && (pairs > 0 || requireFeedback), higherIsBetter: true,
    interval: (c) => (pairs > 0 ? pairedDifference(p, c) : UNOBSERVED), pValue: mcnemarExact(p.onlyFirst, p.onlySecond).firstWorse,
    pairs: { both: p.both, candidateOnly: p.onlyFirst, baselineOnly: p.onlySecond, neither: p.neither },
  };
}

function testsOf(guardrails: Guardrails, evidence: StepEvidence, classification: boolean, requireFeedback: boolean): Test[] {
  const tests: Test[] = [];
  const e = evidence;
  const retrieval = !classification;
  if (guardrails.minAgreement !== null) {
    tests.push({ name: 'agreement', threshold: guardrails.minAgreement, samples: e.compared, applicable: classification, higherIsBetter: true, interval: (c) => wilsonInterval(e.agreed, e.compared, c) });
  }
  if (guardrails.maxAccuracyDrop !== null) tests.push(pairedDrop('accuracy', guardrails.maxAccuracyDrop, e, classification, requireFeedback));
  if (guardrails.minOverlapAtK !== null) {
    // Only rows compared with a gallery have neighbours: a model without one is judged on cosine alone.
    tests.push({ name: 'overlap', threshold: guardrails.minOverlapAtK, samples: e.overlap.n, applicable: retrieval && e.overlap.n > 0, higherIsBetter: true, interval: (c) => meanInterval(e.overlap, c, [0, 1]) });
  }
  if (guardrails.minCosine !== null) {
    tests.push({ name: 'cosine', threshold: guardrails.minCosine, samples: e.cosine.n, applicable: retrieval, higherIsBetter: true, interval: (c) => meanInterval(e.cosine, c, [-1, 1]) });
  }
  if (guardrails.maxRecallDrop !== null) tests.push(pairedDrop('recall', guardrails.maxRecallDrop, e, retrieval, requireFeedback));
  if (guardrails.maxLatencyRatio !== null) {
    const n = (h: StepEvidence['candidateLatency']) => h.counts.reduce((a, b) => a + b, 0);
    const [nc, nb] = [n(e.candidateLatency), n(e.baselineLatency)];
    tests.push({ name: 'latency', threshold: guardrails.maxLatencyRatio, samples: Math.min(nc, nb), applicable: nc > 0 && nb > 0, higherIsBetter: false, interval: (c) => quantileRatio(e.candidateLatency, e.baselineLatency, P99, c) });
  }
  if (guardrails.maxErrorRate !== null) {
    tests.push({ name: 'errorRate', threshold: guardrails.maxErrorRate, samples: e.candidateCalls, applicable: true, higherIsBetter: false, interval: (c) => wilsonInterval(e.candidateErrors, e.candidateCalls, c) });
  }
  return tests;
}

/** A one-sided bound at `confidence` is a side of the two-sided interval at 2·confidence − 1. */
const twoSided = (oneSided: number) => 2 * oneSided - 1;

const finite = (x: number) => (Number.isFinite(x) ? x : null);

/**
 * The false-rollback budget of one look. Across all looks of a rollout the budgets sum to at
 * most 1 − confidence (Σ 6/(π²k²) = 1), shared equally by the guardrails the look can judge
 * (Bonferroni; one the model's task or the step's evidence leaves inapplicable spends nothing),
 * so looking again and again cannot push the chance of rolling back a good variant above it.
 */
export function rollbackAlpha(confidence: number, look: number, guardrails: number): number {
  return ((1 - confidence) * 6) / (Math.PI ** 2 * look ** 2) / Math.max(1, guardrails);
}

/**
 * Judges each guardrail on a step's evidence. Holding is shown at the rollout's confidence;
 * a violation only at this look's rollback confidence (`look` undefined: not a look, no
 * violation is declared). An inapplicable guardrail shows no figure: what it would compute is
 * not what it stands for (a classifier's accuracy pairs are no encoder's recall).
 */
export function judgeGuardrails(guardrails: Guardrails, evidence: StepEvidence, classification: boolean, look: number | undefined, requireFeedback = false): GuardrailFigure[] {
  const tests = testsOf(guardrails, evidence, classification, requireFeedback);
  const holdLevel = twoSided(guardrails.confidence);
  const judged = tests.filter((t) => t.applicable).length;
  const rollbackLevel = look === undefined ? undefined : twoSided(1 - rollbackAlpha(guardrails.confidence, look, judged));
  return tests.map((test) => {
    if (!test.applicable) {
      return { guardrail: test.name, verdict: 'inapplicable' as const, threshold: test.threshold, samples: test.samples, pValue: null, pairs: null, estimate: null, lower: null, upper: null };
    }
    const shown = test.interval(holdLevel);
    const base = {
      guardrail: test.name, threshold: test.threshold, samples: test.samples, pValue: test.pValue ?? null, pairs: test.pairs ?? null,
      estimate: finite(shown.estimate), lower: finite(shown.lower), upper: finite(shown.upper),
    };
    const good = (i: Interval) => (test.higherIsBetter ? i.lower >= test.threshold : i.upper <= test.threshold);
    const bad = (i: Interval) => (test.higherIsBetter ? i.upper < test.threshold : i.lower > test.threshold);
    if (rollbackLevel !== undefined && bad(test.interval(rollbackLevel))) return { ...base, verdict: 'violated' as const };
    return { ...base, verdict: good(shown) ? ('holds' as const) : ('unknown' as const) };
  });
}
