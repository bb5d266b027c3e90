/**
 * The rollout controller's statistics (`npm run bench:rollout`), on simulated request streams fed
 * to the controller's own rule (`judgeStep`), side by side with the analytic figures:
 *   1. requests until rollback of a variant 1 point less accurate (paired feedback, discordant
 *      rows 1 % vs 2 %, maxAccuracyDrop 0) and of a variant agreeing 2 points below minAgreement
 *      (93 % vs 95 %), against the single-look sample size n = z²·Var/δ² at 95 % (the request
 *      count at which the one-sided bound's expected value crosses the limit);
 *   2. the false rollback rate of a variant equal to its baseline (default guardrails), and of
 *      variants exactly at a guardrail's limit (the worst case the confidence must cover), over
 *      long streams with a look every few requests: it must stay ≤ 1 − confidence. The same
 *      streams judged at the plain confidence on every look show why looks spend a budget.
 * Environment: BENCH_RUNS (streams per figure, default 400), BENCH_BATCH (requests between
 * controller passes, default 25), BENCH_MAX_REQUESTS (stream length, default 20000).
 */
import { emptyCounts, ROLLUP_LATENCY_BUCKETS_MS } from '../../gateway/plugin-surface';
import { normalQuantile } from '../../gateway/statistics/distributions';
import { judgeStep, type LookState } from '../../plugins/rollouts/rollout-decision';
import type { StepEvidence } from '../../plugins/rollouts/rollout-evidence';
import { DEFAULT_GUARDRAILS, type Guardrails, type RolloutPlan } from '../../plugins/rollouts/rollout-plan';

const RUNS = Number(process.env.BENCH_RUNS ?? 400);
const BATCH = Number(process.env.BENCH_BATCH ?? 25);
const MAX_REQUESTS = Number(process.env.BENCH_MAX_REQUESTS ?? 20000);
const CONFIDENCE = 0.95;

/** One request's outcome: whether the two agree, and with feedback which was right. */
interface Outcome {
  agrees: boolean;
  paired: 'both' | 'onlyFirst' | 'onlySecond' | 'neither';
}

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A stream where the variants agree with probability `agreement`; candidate alone right `onlyCandidate`, baseline alone `onlyBaseline`. */
function stream(agreement: number, onlyCandidate: number, onlyBaseline: number, random: () => number): () => Outcome {
  return () => {
    const u = random();
    const paired = u < onlyCandidate ? 'onlyFirst' : u < onlyCandidate + onlyBaseline ? 'onlySecond' : random() < 0.85 ? 'both' : 'neither';
    return { agrees: random() < agreement, paired };
  };
}

function emptyEvidence(): StepEvidence {
  const histogram = () => ({ bounds: ROLLUP_LATENCY_BUCKETS_MS, counts: [...emptyCounts().latencyBuckets] });
  return {
    requests: 0, candidateAnswered: 0, candidateCalls: 0, candidateErrors: 0, compared: 0, agreed: 0,
    paired: { both: 0, onlyFirst: 0, onlySecond: 0, neither: 0 }, candidateLatency: histogram(), baselineLatency: histogram(),
  };
}

/** Requests until the controller rolls back (undefined: it did not within the stream). */
function runStream(guardrails: Guardrails, next: () => Outcome, spendBudget: boolean): number | undefined {
  const plan: RolloutPlan = { steps: [{ trafficPercent: 5, minRequests: Number.MAX_SAFE_INTEGER, minDurationSeconds: 0 }], guardrails, shadowPercent: 100 };
  const evidence = emptyEvidence();
  let looks: LookState = { looks: 0, lastLookSamples: 0 };
  for (let n = 0; n < MAX_REQUESTS; ) {
    for (let i = 0; i < BATCH; i++, n++) {
      const o = next();
      evidence.requests++;
      evidence.candidateCalls++;
      evidence.compared++;
      if (o.agrees) evidence.agreed++;
      evidence.paired[o.paired]++;
    }
    // Without the budget: every pass is a look at the first look's level (the naive rule).
    const state = spendBudget ? looks : { looks: 0, lastLookSamples: 0 };
    const judgement = judgeStep(plan, 0, evidence, 0, state, true);
    looks = judgement.lookState;
    if (judgement.decision === 'rollback') return evidence.requests;
  }
  return undefined;
}

const off: Guardrails = { maxAccuracyDrop: null, minAgreement: null, maxLatencyRatio: null, maxErrorRate: null, confidence: CONFIDENCE };

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function detection(name: string, guardrails: Guardrails, make: (random: () => number) => () => Outcome, analytic: number): void {
  const needed: number[] = [];
  let missed = 0;
  for (let run = 0; run < RUNS; run++) {
    const n = runStream(guardrails, make(seeded(run + 1)), true);
    if (n === undefined) missed++;
    else needed.push(n);
  }
  const median = quantile(needed, 0.5);
  console.log(`${name}: analytic single look n = ${analytic}; controller median ${median} (p90 ${quantile(needed, 0.9)}), ${(median / analytic).toFixed(2)}× the analytic figure; not detected within ${MAX_REQUESTS}: ${missed}/${RUNS}`);
}

function falseRollbacks(name: string, guardrails: Guardrails, make: (random: () => number) => () => Outcome): void {
  let spent = 0;
  let naive = 0;
  for (let run = 0; run < RUNS; run++) {
    if (runStream(guardrails, make(seeded(10_000 + run)), true) !== undefined) spent++;
    if (runStream(guardrails, make(seeded(10_000 + run)), false) !== undefined) naive++;
  }
  const limit = 1 - CONFIDENCE;
  console.log(`${name}: false rollbacks ${spent}/${RUNS} = ${(spent / RUNS).toFixed(3)} (limit ${limit.toFixed(2)}: ${spent / RUNS <= limit ? 'ok' : 'EXCEEDED'}); judged at the plain confidence on every pass: ${(naive / RUNS).toFixed(3)}`);
}

const z = normalQuantile(CONFIDENCE);
// Paired accuracy: Var(d) per row = b + c − (b − c)²; agreement: p(1 − p).
const accuracyN = Math.ceil((z ** 2 * (0.01 + 0.02 - 0.01 ** 2)) / 0.01 ** 2);
const agreementN = Math.ceil((z ** 2 * 0.93 * 0.07) / 0.02 ** 2);

console.log(`rollout controller, confidence ${CONFIDENCE}, ${RUNS} streams per figure, a controller pass every ${BATCH} requests, streams of ${MAX_REQUESTS} requests`);
detection('1-point accuracy drop (maxAccuracyDrop 0)', { ...off, maxAccuracyDrop: 0 }, (r) => stream(1, 0.01, 0.02, r), accuracyN);
detection('agreement 2 points below the limit (93 % vs minAgreement 95 %)', { ...off, minAgreement: 0.95 }, (r) => stream(0.93, 0, 0, r), agreementN);
falseRollbacks('equal variant, default guardrails (agreement 97 %, equal accuracy)', { ...DEFAULT_GUARDRAILS, maxLatencyRatio: null }, (r) => stream(0.97, 0.015, 0.015, r));
falseRollbacks('accuracy exactly at the limit (1 point lower, maxAccuracyDrop 0.01)', { ...off, maxAccuracyDrop: 0.01 }, (r) => stream(1, 0.01, 0.02, r));
falseRollbacks('agreement exactly at the limit (95 %, minAgreement 0.95)', { ...off, minAgreement: 0.95 }, (r) => stream(0.95, 0, 0, r));
