import { emptyCounts, meanInterval, ROLLUP_LATENCY_BUCKETS_MS } from '../../gateway/plugin-surface';
import { judgeGuardrails, rollbackAlpha, type GuardrailFigure } from '../../plugins/rollouts/guardrails';
import { judgeStep } from '../../plugins/rollouts/rollout-decision';
import type { StepEvidence } from '../../plugins/rollouts/rollout-evidence';
import { completePlan, DEFAULT_GUARDRAILS, storedPlan, type Guardrails, type RolloutPlan } from '../../plugins/rollouts/rollout-plan';

/**
 * The retrieval guardrails on constructed evidence: overlap@k and cosine from moment sums (Student
 * t), recall@k from paired feedback (Newcombe, McNemar), each judged only for an encoder, and the
 * classification guardrails only for a classifier.
 */

const OFF: Guardrails = { maxAccuracyDrop: null, minAgreement: null, minOverlapAtK: null, minCosine: null, maxRecallDrop: null, maxLatencyRatio: null, maxErrorRate: null, confidence: 0.95 };

/** Moment sums of `n` values: a share `high` of them `hi`, the rest `lo`. */
function moments(n: number, lo: number, hi: number, high: number) {
  const k = Math.round(n * high);
  return { n, sum: k * hi + (n - k) * lo, sumOfSquares: k * hi * hi + (n - k) * lo * lo };
}

function evidence(change: Partial<StepEvidence> = {}): StepEvidence {
  const histogram = () => ({ bounds: ROLLUP_LATENCY_BUCKETS_MS, counts: [...emptyCounts().latencyBuckets] });
  return {
    requests: 400, candidateAnswered: 20, candidateCalls: 400, candidateErrors: 0, compared: 400, agreed: 0,
    cosine: { n: 0, sum: 0, sumOfSquares: 0 }, overlap: { n: 0, sum: 0, sumOfSquares: 0 },
    paired: { both: 0, onlyFirst: 0, onlySecond: 0, neither: 0 }, candidateLatency: histogram(), baselineLatency: histogram(),
    ...change,
  };
}

const verdicts = (figures: GuardrailFigure[]) => Object.fromEntries(figures.map((f) => [f.guardrail, f.verdict]));

describe('retrieval guardrails', () => {
  const good = evidence({ overlap: moments(400, 0.9, 1, 0.6), cosine: moments(400, 0.999, 1, 0.5) });
  const broken = evidence({ overlap: moments(400, 0, 0.3, 0.4), cosine: moments(400, -0.1, 0.1, 0.5) });

  test('a good encoder holds overlap and cosine; the classification guardrails are inapplicable to it', () => {
    const figures = judgeGuardrails(DEFAULT_GUARDRAILS, good, false, 1);
    expect(verdicts(figures)).toEqual({ agreement: 'inapplicable', accuracy: 'inapplicable', overlap: 'holds', cosine: 'holds', recall: 'inapplicable', latency: 'inapplicable', errorRate: 'holds' });
    expect(figures.find((f) => f.guardrail === 'overlap')).toMatchObject({ estimate: 0.96, threshold: 0.5, samples: 400 });
  });

  test('a broken encoder violates both at its first look, and only at a look', () => {
    expect(verdicts(judgeGuardrails(DEFAULT_GUARDRAILS, broken, false, 1))).toMatchObject({ overlap: 'violated', cosine: 'violated' });
    expect(verdicts(judgeGuardrails(DEFAULT_GUARDRAILS, broken, false, undefined))).toMatchObject({ overlap: 'unknown', cosine: 'unknown' });
  });

  test('a classifier is not judged on the retrieval guardrails', () => {
    expect(verdicts(judgeGuardrails(DEFAULT_GUARDRAILS, broken, true, 1))).toMatchObject({ overlap: 'inapplicable', cosine: 'inapplicable', recall: 'inapplicable' });
  });

  test('without a gallery overlap is inapplicable and cosine alone decides; with no rows cosine is not conclusive', () => {
    const noGallery = evidence({ cosine: good.cosine });
    expect(verdicts(judgeGuardrails(DEFAULT_GUARDRAILS, noGallery, false, 1))).toMatchObject({ overlap: 'inapplicable', cosine: 'holds' });
    expect(verdicts(judgeGuardrails(DEFAULT_GUARDRAILS, evidence({ compared: 0 }), false, 1))).toMatchObject({ cosine: 'unknown' });
  });

  test('maxRecallDrop is the paired test of recall@k: a 5-point drop is violated, equal recall holds, a classifier is judged on accuracy instead', () => {
    const drop = evidence({ paired: { both: 900, onlyFirst: 5, onlySecond: 55, neither: 40 } });
    const recall = judgeGuardrails({ ...OFF, maxRecallDrop: 0.01 }, drop, false, 1)[0];
    expect(recall).toMatchObject({ guardrail: 'recall', verdict: 'violated', threshold: -0.01, samples: 1000 });
    expect(recall.estimate).toBeCloseTo(-0.05, 10);
    expect(recall.pValue).toBeLessThan(1e-6);
    expect(recall.pairs).toEqual({ both: 900, candidateOnly: 5, baselineOnly: 55, neither: 40 });
    const equal = evidence({ paired: { both: 19000, onlyFirst: 20, onlySecond: 20, neither: 960 } });
    expect(judgeGuardrails({ ...OFF, maxRecallDrop: 0.01 }, equal, false, 1)[0].verdict).toBe('holds');
    expect(verdicts(judgeGuardrails({ ...OFF, maxRecallDrop: 0.01, maxAccuracyDrop: 0.01 }, drop, true, 1))).toEqual({ accuracy: 'violated', recall: 'inapplicable' });
  });

  test('the controller rolls back on overlap, advances when overlap, cosine and recall hold', () => {
    const plan: RolloutPlan = completePlan({ steps: [{ trafficPercent: 5, minRequests: 100, minDurationSeconds: 0 }, { trafficPercent: 100, minRequests: 100, minDurationSeconds: 0 }], guardrails: { maxLatencyRatio: null } });
    const start = { looks: 0, lastLookSamples: 0 };
    expect(judgeStep(plan, 0, broken, 10, start, false)).toMatchObject({ decision: 'rollback', reason: expect.stringMatching(/overlap 0\.12 .* vs 0\.5 on 400/) });
    const feedback = { paired: { both: 19000, onlyFirst: 20, onlySecond: 20, neither: 960 } };
    expect(judgeStep(plan, 0, { ...good, ...feedback }, 10, start, false).decision).toBe('advance');
    // Recall is judged once feedback arrives, and holds the step until it is shown.
    const little = { paired: { both: 90, onlyFirst: 1, onlySecond: 1, neither: 8 } };
    expect(judgeStep(plan, 0, { ...good, ...little }, 10, start, false)).toMatchObject({ decision: 'hold', reason: expect.stringMatching(/recall .* not conclusive/) });
  });

  test('without feedback recall is inapplicable and a step may pass on the rest; a plan that waits for feedback holds until recall is shown', () => {
    const steps = [{ trafficPercent: 5, minRequests: 100, minDurationSeconds: 0 }, { trafficPercent: 100, minRequests: 100, minDurationSeconds: 0 }];
    const start = { looks: 0, lastLookSamples: 0 };
    const passes = judgeStep(completePlan({ steps, guardrails: { maxLatencyRatio: null } }), 0, good, 10, start, false);
    expect(passes.decision).toBe('advance');
    // An inapplicable guardrail shows no figure, only its threshold and (zero) samples.
    expect(passes.figures.find((f) => f.guardrail === 'recall')).toEqual({ guardrail: 'recall', verdict: 'inapplicable', threshold: -0.01, samples: 0, estimate: null, lower: null, upper: null, pValue: null, pairs: null });
    const waiting = completePlan({ steps, guardrails: { maxLatencyRatio: null }, requireFeedback: true });
    expect(waiting.requireFeedback).toBe(true);
    expect(judgeStep(waiting, 0, good, 10, start, false)).toMatchObject({ decision: 'hold', reason: expect.stringMatching(/recall n\/a \[-1, 1\] vs -0\.01 on 0 not conclusive/) });
    const feedback = { paired: { both: 19000, onlyFirst: 20, onlySecond: 20, neither: 960 } };
    expect(judgeStep(waiting, 0, { ...good, ...feedback }, 10, start, false).decision).toBe('advance');
    // A classifier waits on accuracy the same way; recall stays inapplicable to it.
    const classifier = evidence({ agreed: 400 });
    expect(verdicts(judgeStep(waiting, 0, classifier, 10, start, true).figures)).toMatchObject({ accuracy: 'unknown', recall: 'inapplicable' });
  });

  test("a step that has not passed by its maxDurationSeconds is rolled back, saying what was not shown; without one it holds", () => {
    const step = { trafficPercent: 10, minRequests: 100, minDurationSeconds: 0 };
    const start = { looks: 0, lastLookSamples: 0 };
    const unclear = evidence({ overlap: moments(40, 0.3, 0.8, 0.5), cosine: good.cosine });
    const holding = completePlan({ steps: [step, { ...step, trafficPercent: 100 }], guardrails: { maxLatencyRatio: null } });
    expect(judgeStep(holding, 0, unclear, 10_000, start, false).decision).toBe('hold');
    const deadline = completePlan({ steps: [{ ...step, maxDurationSeconds: 600 }, { ...step, trafficPercent: 100 }], guardrails: { maxLatencyRatio: null } });
    expect(judgeStep(deadline, 0, unclear, 599, start, false).decision).toBe('hold');
    expect(judgeStep(deadline, 0, unclear, 600, start, false)).toMatchObject({ decision: 'rollback', reason: expect.stringMatching(/^step 1 \(10 %\) did not pass within its 600 s: overlap .* not conclusive/) });
    // A step that passes in time is not affected.
    expect(judgeStep(deadline, 0, good, 700, start, false).decision).toBe('advance');
    expect(() => completePlan({ steps: [{ ...step, minDurationSeconds: 60, maxDurationSeconds: 30 }, { ...step, trafficPercent: 100 }] })).toThrow(/maxDurationSeconds must be a whole number of seconds of at least/);
    expect(completePlan({}).steps.every((s) => s.maxDurationSeconds === null)).toBe(true);
  });

  test('the rollback budget is shared by the guardrails a look can judge: inapplicable ones spend none of it', () => {
    // An overlap figure just violated when three guardrails share the look's budget (overlap, cosine, error rate).
    const applicable = { ...OFF, minOverlapAtK: 0.5, minCosine: 0.95, maxErrorRate: 0.01 };
    const at = (mean: number) => evidence({ overlap: moments(100, mean - 0.15, mean + 0.15, 0.5), cosine: good.cosine });
    let mean = 0.5;
    while (verdicts(judgeGuardrails(applicable, at(mean), false, 1)).overlap !== 'violated') mean -= 0.001;
    // The defaults add agreement, accuracy and recall (inapplicable here) and the same verdict follows...
    expect(verdicts(judgeGuardrails({ ...DEFAULT_GUARDRAILS, maxLatencyRatio: null }, at(mean), false, 1)).overlap).toBe('violated');
    // ...where splitting the budget over all six would not have declared it.
    const six = 2 * (1 - rollbackAlpha(0.95, 1, 6)) - 1;
    expect(meanInterval(at(mean).overlap, six, [0, 1]).upper).toBeGreaterThanOrEqual(0.5);
  });
});

describe('retrieval guardrails in the plan', () => {
  test('defaults, and values out of range refused', () => {
    expect(completePlan({}).guardrails).toMatchObject({ minOverlapAtK: 0.5, minCosine: 0.95, maxRecallDrop: 0.01 });
    expect(completePlan({ guardrails: { minCosine: -1, minOverlapAtK: null } }).guardrails).toMatchObject({ minCosine: -1, minOverlapAtK: null });
    expect(() => completePlan({ guardrails: { minOverlapAtK: 1.1 } })).toThrow(/minOverlapAtK/);
    expect(() => completePlan({ guardrails: { minCosine: -1.5 } })).toThrow(/minCosine must be a number in \[-1, 1\]/);
    expect(() => completePlan({ guardrails: { maxRecallDrop: NaN } })).toThrow(/maxRecallDrop/);
  });

  test('a plan stored before the retrieval guardrails existed reads them as off', () => {
    const old = completePlan({});
    const { minOverlapAtK: _o, minCosine: _c, maxRecallDrop: _r, ...before } = old.guardrails;
    expect(storedPlan({ ...old, guardrails: before as Guardrails }).guardrails).toEqual({ ...old.guardrails, minOverlapAtK: null, minCosine: null, maxRecallDrop: null });
    const { requireFeedback: _f, ...withoutOption } = old;
    expect(storedPlan(withoutOption as RolloutPlan).requireFeedback).toBe(false);
  });
});
