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
 *      streams judged at the plain confidence on every look show why looks spend a budget;
 *   3. the same for an encoder: queries until rollback of a variant whose mean overlap@10 is 0.05
 *      below minOverlapAtK (per-query overlaps are multiples of 0.1, Binomial(10, p)/10), against
 *      n = ((z_α + z_β)·σ/δ)² at power 50 % (the median's counterpart) and 90 % (the p90's); false
 *      rollbacks of an encoder equal to its baseline (default guardrails) and exactly at the limit.
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

/**
 * One request's outcome: whether the two agree (classifiers) or their overlap@10 and cosine
 * (encoders), and with feedback which was right.
 */
interface Outcome {
  agrees: boolean;
  overlap: number;
  cosine: number;
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

function pairedOutcome(onlyCandidate: number, onlyBaseline: number, bothRight: number, random: () => number): Outcome['paired'] {
  const u = random();
  return u < onlyCandidate ? 'onlyFirst' : u < onlyCandidate + onlyBaseline ? 'onlySecond' : random() < bothRight ? 'both' : 'neither';
}

/** A classifier's stream: the variants agree with probability `agreement`; candidate alone right `onlyCandidate`, baseline alone `onlyBaseline`. */
function stream(agreement: number, onlyCandidate: number, onlyBaseline: number, random: () => number): () => Outcome {
  return () => ({ agrees: random() < agreement, overlap: 1, cosine: 1, paired: pairedOutcome(onlyCandidate, onlyBaseline, 0.85, random) });
}

/**
 * An encoder's stream: each query's overlap@10 is Binomial(10, meanOverlap)/10 (the neighbours
 * shared, a multiple of 0.1), its cosine 0.99; recall@10 of the two is paired with equal
 * discordant rates (both right 96 % of the rest, as the demo encoder's).
 */
function encoderStream(meanOverlap: number, random: () => number): () => Outcome {
  return () => {
    let shared = 0;
    for (let i = 0; i < 10; i++) if (random() < meanOverlap) shared++;
    return { agrees: true, overlap: shared / 10, cosine: 0.99, paired: pairedOutcome(0.01, 0.01, 0.96, random) };
  };
}

function emptyEvidence(): StepEvidence {
  const histogram = () => ({ bounds: ROLLUP_LATENCY_BUCKETS_MS, counts: [...emptyCounts().latencyBuckets] });
  return {
    requests: 0, candidateAnswered: 0, candidateCalls: 0, candidateErrors: 0, compared: 0, agreed: 0,
    cosine: { n: 0, sum: 0, sumOfSquares: 0 }, overlap: { n: 0, sum: 0, sumOfSquares: 0 },
    paired: { both: 0, onlyFirst: 0, onlySecond: 0, neither: 0 }, candidateLatency: histogram(), baselineLatency: histogram(),
  };
}

/** Requests until the controller rolls back (undefined: it did not within the stream). */
function runStream(guardrails: Guardrails, next: () => Outcome, spendBudget: boolean, classification: boolean): number | undefined {
  const plan: RolloutPlan = { steps: [{ trafficPercent: 5, minRequests: Number.MAX_SAFE_INTEGER, minDurationSeconds: 0 }], guardrails, shadowPercent: 100, requireFeedback: false };
  const evidence = emptyEvidence();
  let looks: LookState = { looks: 0, lastLookSamples: 0 };
  for (let n = 0; n < MAX_REQUESTS; ) {
    for (let i = 0; i < BATCH; i++, n++) {
      const o = next();
      evidence.requests++;
      evidence.candidateCalls++;
      evidence.compared++;
      if (o.agrees) evidence.agreed++;
      for (const [moments, x] of [[evidence.overlap, o.overlap], [evidence.cosine, o.cosine]] as const) {
        moments.n++;
        moments.sum += x;
        moments.sumOfSquares += x * x;
      }
      evidence.paired[o.paired]++;
    }
    // Without the budget: every pass is a look at the first look's level (the naive rule).
    const state = spendBudget ? looks : { looks: 0, lastLookSamples: 0 };
    const judgement = judgeStep(plan, 0, evidence, 0, state, classification);
    looks = judgement.lookState;
    if (judgement.decision === 'rollback') return evidence.requests;
  }
  return undefined;
}

const off: Guardrails = { maxAccuracyDrop: null, minAgreement: null, minOverlapAtK: null, minCosine: null, maxRecallDrop: null, maxLatencyRatio: null, maxErrorRate: null, confidence: CONFIDENCE };

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** How a figure's streams are made, and whether they are a classifier's. */
interface Streams {
  make: (random: () => number) => () => Outcome;
  classification: boolean;
}

function detection(name: string, guardrails: Guardrails, { make, classification }: Streams, analytic: number, analytic90?: number): void {
  const needed: number[] = [];
  let missed = 0;
  for (let run = 0; run < RUNS; run++) {
    const n = runStream(guardrails, make(seeded(run + 1)), true, classification);
    if (n === undefined) missed++;
    else needed.push(n);
  }
  const median = quantile(needed, 0.5);
  const p90 = quantile(needed, 0.9);
  const vs90 = analytic90 === undefined ? '' : `; analytic at 90 % power ${analytic90}, p90 ${(p90 / analytic90).toFixed(2)}× it`;
  console.log(`${name}: analytic single look n = ${analytic}; controller median ${median} (p90 ${p90}), ${(median / analytic).toFixed(2)}× the analytic figure${vs90}; not detected within ${MAX_REQUESTS}: ${missed}/${RUNS}`);
}

function falseRollbacks(name: string, guardrails: Guardrails, { make, classification }: Streams): void {
  let spent = 0;
  let naive = 0;
  for (let run = 0; run < RUNS; run++) {
    if (runStream(guardrails, make(seeded(10_000 + run)), true, classification) !== undefined) spent++;
    if (runStream(guardrails, make(seeded(10_000 + run)), false, classification) !== undefined) naive++;
  }
  const limit = 1 - CONFIDENCE;
  console.log(`${name}: false rollbacks ${spent}/${RUNS} = ${(spent / RUNS).toFixed(3)} (limit ${limit.toFixed(2)}: ${spent / RUNS <= limit ? 'ok' : 'EXCEEDED'}); judged at the plain confidence on every pass: ${(naive / RUNS).toFixed(3)}`);
}

const z = normalQuantile(CONFIDENCE);
// Paired accuracy: Var(d) per row = b + c − (b − c)²; agreement: p(1 − p).
const accuracyN = Math.ceil((z ** 2 * (0.01 + 0.02 - 0.01 ** 2)) / 0.01 ** 2);
const agreementN = Math.ceil((z ** 2 * 0.93 * 0.07) / 0.02 ** 2);

const classifier = (agreement: number, onlyCandidate: number, onlyBaseline: number): Streams => ({ make: (r) => stream(agreement, onlyCandidate, onlyBaseline, r), classification: true });
const encoder = (meanOverlap: number): Streams => ({ make: (r) => encoderStream(meanOverlap, r), classification: false });

console.log(`rollout controller, confidence ${CONFIDENCE}, ${RUNS} streams per figure, a controller pass every ${BATCH} requests, streams of ${MAX_REQUESTS} requests`);
detection('1-point accuracy drop (maxAccuracyDrop 0)', { ...off, maxAccuracyDrop: 0 }, classifier(1, 0.01, 0.02), accuracyN);
detection('agreement 2 points below the limit (93 % vs minAgreement 95 %)', { ...off, minAgreement: 0.95 }, classifier(0.93, 0, 0), agreementN);
falseRollbacks('equal variant, default guardrails (agreement 97 %, equal accuracy)', { ...DEFAULT_GUARDRAILS, maxLatencyRatio: null }, classifier(0.97, 0.015, 0.015));
falseRollbacks('accuracy exactly at the limit (1 point lower, maxAccuracyDrop 0.01)', { ...off, maxAccuracyDrop: 0.01 }, classifier(1, 0.01, 0.02));
falseRollbacks('agreement exactly at the limit (95 %, minAgreement 0.95)', { ...off, minAgreement: 0.95 }, classifier(0.95, 0, 0));

// Encoders: overlap@10 of a Binomial(10, p)/10 query has σ² = p(1 − p)/10; a drop of δ = 0.05.
const OVERLAP_LIMIT = DEFAULT_GUARDRAILS.minOverlapAtK as number;
const overlapMean = OVERLAP_LIMIT - 0.05;
const overlapN = (power: number) => Math.ceil((((z + normalQuantile(power)) ** 2) * overlapMean * (1 - overlapMean)) / 10 / 0.05 ** 2);
detection(`overlap@10 0.05 below the limit (${overlapMean} vs minOverlapAtK ${OVERLAP_LIMIT})`, { ...off, minOverlapAtK: OVERLAP_LIMIT }, encoder(overlapMean), overlapN(0.5), overlapN(0.9));
falseRollbacks('equal encoder, default guardrails (overlap@10 0.96, cosine 0.99, equal recall@10)', { ...DEFAULT_GUARDRAILS, maxLatencyRatio: null }, encoder(0.96));
falseRollbacks(`overlap@10 exactly at the limit (${OVERLAP_LIMIT}, minOverlapAtK ${OVERLAP_LIMIT})`, { ...off, minOverlapAtK: OVERLAP_LIMIT }, encoder(OVERLAP_LIMIT));
