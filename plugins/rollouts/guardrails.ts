import { mcnemarExact, quantileRatio, pairedDifference, wilsonInterval, type Interval } from '../../gateway/plugin-surface';
import type { StepEvidence } from './rollout-evidence';
import type { Guardrails } from './rollout-plan';

export type GuardrailName = 'accuracy' | 'agreement' | 'latency' | 'errorRate';

/**
 * holds: the bound at the rollout's confidence shows the guardrail is met; violated: the bound
 * at the look's rollback confidence shows it is not; unknown: neither yet; inapplicable: this
 * step cannot measure it (no feedback, no latency of one side, a retrieval model's agreement).
 */
export type Verdict = 'holds' | 'violated' | 'unknown' | 'inapplicable';

export interface GuardrailFigure {
  guardrail: GuardrailName;
  verdict: Verdict;
  /** The measured figure (accuracy: candidate − baseline) and its two-sided interval at the rollout's confidence. */
  estimate: number | null;
  lower: number | null;
  upper: number | null;
  /** The guardrail's limit, on the estimate's scale (accuracy: −maxAccuracyDrop). */
  threshold: number;
  /** Observations behind the figure (rows compared, feedback pairs, requests). */
  samples: number;
  /** McNemar's one-sided p-value for "the candidate is less accurate" (accuracy only). */
  pValue: number | null;
}

/** A test in one direction: is the figure on the good side of the threshold, at a confidence? */
interface Test {
  name: GuardrailName;
  threshold: number;
  samples: number;
  applicable: boolean;
  /** Higher figures are better (agreement, accuracy) or worse (latency, error rate). */
  higherIsBetter: boolean;
  interval(confidence: number): Interval;
  pValue?: number;
}

const P99 = 0.99;

function testsOf(guardrails: Guardrails, evidence: StepEvidence, classification: boolean): Test[] {
  const tests: Test[] = [];
  const e = evidence;
  if (guardrails.minAgreement !== null) {
    tests.push({ name: 'agreement', threshold: guardrails.minAgreement, samples: e.compared, applicable: classification, higherIsBetter: true, interval: (c) => wilsonInterval(e.agreed, e.compared, c) });
  }
  if (guardrails.maxAccuracyDrop !== null) {
    const pairs = e.paired.both + e.paired.onlyFirst + e.paired.onlySecond + e.paired.neither;
    tests.push({
      name: 'accuracy', threshold: -guardrails.maxAccuracyDrop, samples: pairs, applicable: classification && pairs > 0, higherIsBetter: true,
      interval: (c) => pairedDifference(e.paired, c), pValue: mcnemarExact(e.paired.onlyFirst, e.paired.onlySecond).firstWorse,
    });
  }
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
 * most 1 − confidence (Σ 6/(π²k²) = 1), shared equally by the guardrails (Bonferroni), so
 * looking again and again cannot push the chance of rolling back a good variant above it.
 */
export function rollbackAlpha(confidence: number, look: number, guardrails: number): number {
  return ((1 - confidence) * 6) / (Math.PI ** 2 * look ** 2) / Math.max(1, guardrails);
}

/**
 * Judges each guardrail on a step's evidence. Holding is shown at the rollout's confidence;
 * a violation only at this look's rollback confidence (`look` undefined: not a look, no
 * violation is declared).
 */
export function judgeGuardrails(guardrails: Guardrails, evidence: StepEvidence, classification: boolean, look: number | undefined): GuardrailFigure[] {
  const tests = testsOf(guardrails, evidence, classification);
  const holdLevel = twoSided(guardrails.confidence);
  const rollbackLevel = look === undefined ? undefined : twoSided(1 - rollbackAlpha(guardrails.confidence, look, tests.length));
  return tests.map((test) => {
    const shown = test.interval(holdLevel);
    const base = {
      guardrail: test.name, threshold: test.threshold, samples: test.samples, pValue: test.pValue ?? null,
      estimate: finite(shown.estimate), lower: finite(shown.lower), upper: finite(shown.upper),
    };
    if (!test.applicable) return { ...base, verdict: 'inapplicable' as const };
    const good = (i: Interval) => (test.higherIsBetter ? i.lower >= test.threshold : i.upper <= test.threshold);
    const bad = (i: Interval) => (test.higherIsBetter ? i.upper < test.threshold : i.lower > test.threshold);
    if (rollbackLevel !== undefined && bad(test.interval(rollbackLevel))) return { ...base, verdict: 'violated' as const };
    return { ...base, verdict: good(shown) ? ('holds' as const) : ('unknown' as const) };
  });
}
