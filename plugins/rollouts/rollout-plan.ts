import { badInput } from '../../gateway/plugin-surface';

/** One traffic step: the candidate answers `trafficPercent` % of requests until the step's evidence suffices. */
export interface RolloutStep {
  /** Share of primary traffic the candidate answers, 0..100 (0: shadow only). */
  trafficPercent: number;
  /** Requests the model must serve during the step before it may advance. */
  minRequests: number;
  /** Seconds the step must last before it may advance. */
  minDurationSeconds: number;
  /**
   * Seconds after which a step that has not passed is rolled back (its guardrails not shown to
   * hold in time, or its minimums not met); absent or null: the step holds as long as it takes.
   */
  maxDurationSeconds?: number | null;
}

/**
 * What must hold for the candidate to advance, each judged at `confidence` from the step's
 * evidence; null switches a guardrail off.
 */
export interface Guardrails {
  /** Largest accepted drop of top-1 accuracy, candidate vs baseline on the same rows (feedback), e.g. 0.01 = one point. */
  maxAccuracyDrop: number | null;
  /** Smallest accepted share of rows where candidate and baseline agree on the top-1 class (classifiers). */
  minAgreement: number | null;
  /** Retrieval: smallest accepted mean overlap@k of candidate's and baseline's gallery neighbours (k: the gateway's SERVING_RETRIEVAL_K). */
  minOverlapAtK: number | null;
  /** Retrieval: smallest accepted mean cosine of the candidate's embedding and the baseline's of the same row. */
  minCosine: number | null;
  /** Retrieval: largest accepted drop of recall@k, candidate vs baseline on the same queries (feedback). */
  maxRecallDrop: number | null;
  /** Largest accepted ratio of p99 latencies (candidate / baseline) of the requests each answered. */
  maxLatencyRatio: number | null;
  /** Largest accepted share of the candidate's requests (answered or shadowed) that failed. */
  maxErrorRate: number | null;
  /** Confidence of every decision, in (0, 1). */
  confidence: number;
}

export interface RolloutPlan {
  steps: RolloutStep[];
  guardrails: Guardrails;
  /** Share (0..100) of each variant's answered requests the other one shadows, for comparisons and paired feedback. */
  shadowPercent: number;
  /**
   * Whether a step waits for feedback: the accuracy (classifier) or recall (encoder) guardrail,
   * when on, is then not conclusive until paired feedback shows it holds, instead of inapplicable
   * without feedback (a step may then pass on the other guardrails alone).
   */
  requireFeedback: boolean;
}

/** What a caller may leave out; `completePlan` fills in the defaults. */
export interface PlanRequest {
  steps?: RolloutStep[] | null;
  guardrails?: Partial<Guardrails> | null;
  /** Prepend a 0 % step (the candidate only shadows) with the first step's minimums. */
  shadowFirst?: boolean | null;
  shadowPercent?: number | null;
  requireFeedback?: boolean | null;
}

export const DEFAULT_STEPS: readonly RolloutStep[] = [5, 25, 50, 100].map((trafficPercent) => ({ trafficPercent, minRequests: 1000, minDurationSeconds: 300 }));

/** Every request is compared: the evidence comes fastest, at the cost of running each request twice (the shadow in idle CPU). */
export const DEFAULT_SHADOW_PERCENT = 100;

export const DEFAULT_GUARDRAILS: Guardrails = {
  maxAccuracyDrop: 0.01,
  minAgreement: 0.95,
  // From the demo encoder (README, Canary rollouts): rtn W8A8 overlaps FP32 at 0.96, rtn W4A4 at
  // 0.60, corrupted weights at 0.13; cosines 1.000, 0.994, −0.01.
  minOverlapAtK: 0.5,
  minCosine: 0.95,
  maxRecallDrop: 0.01,
  maxLatencyRatio: 1.5,
  maxErrorRate: 0.01,
  confidence: 0.95,
};

const MAX_STEPS = 20;

function fraction(name: string, value: number | null, low: number, high: number, closed: boolean): void {
  if (value === null) return;
  const inside = closed ? value >= low && value <= high : value > low && value < high;
  if (!Number.isFinite(value) || !inside) throw badInput(`guardrails.${name} must be a number in ${closed ? '[' : '('}${low}, ${high}${closed ? ']' : ')'}; got ${value}`);
}

/**
 * The plan a request asks for, defaults filled in, or BAD_USER_INPUT naming the first thing
 * wrong: steps whose percent is outside 0..100 or not strictly increasing, a last step below
 * 100 %, minimums that are not non-negative integers, guardrails out of range, a confidence
 * outside (0, 1). Pure: callers validate before they write anything.
 */
export function completePlan(request: PlanRequest): RolloutPlan {
  const given = request.steps && request.steps.length > 0 ? request.steps : DEFAULT_STEPS;
  if (given.length > MAX_STEPS) throw badInput(`a rollout has at most ${MAX_STEPS} steps; got ${given.length}`);
  given.forEach((step, i) => {
    if (!Number.isFinite(step.trafficPercent) || step.trafficPercent < 0 || step.trafficPercent > 100) {
      throw badInput(`steps[${i}].trafficPercent must be in 0..100; got ${step.trafficPercent}`);
    }
    if (i > 0 && !(step.trafficPercent > given[i - 1].trafficPercent)) {
      throw badInput(`steps must increase their trafficPercent strictly; steps[${i}] has ${step.trafficPercent} after ${given[i - 1].trafficPercent}`);
    }
    for (const field of ['minRequests', 'minDurationSeconds'] as const) {
      if (!Number.isInteger(step[field]) || step[field] < 0) throw badInput(`steps[${i}].${field} must be a non-negative integer; got ${step[field]}`);
    }
    const max = step.maxDurationSeconds;
    if (max !== undefined && max !== null && !(Number.isInteger(max) && max >= Math.max(1, step.minDurationSeconds))) {
      throw badInput(`steps[${i}].maxDurationSeconds must be a whole number of seconds of at least the step's minDurationSeconds (and 1); got ${max}`);
    }
  });
  if (given[given.length - 1].trafficPercent !== 100) {
    throw badInput(`the last step must send 100 % of the traffic to the candidate (promotion follows it); got ${given[given.length - 1].trafficPercent}`);
  }
  const steps = given.map((s) => ({ trafficPercent: s.trafficPercent, minRequests: s.minRequests, minDurationSeconds: s.minDurationSeconds, maxDurationSeconds: s.maxDurationSeconds ?? null }));
  if (request.shadowFirst && steps[0].trafficPercent > 0) steps.unshift({ ...steps[0], trafficPercent: 0 });

  const guardrails: Guardrails = { ...DEFAULT_GUARDRAILS };
  for (const [key, value] of Object.entries(request.guardrails ?? {}) as Array<[keyof Guardrails, number | null | undefined]>) {
    if (value !== undefined) (guardrails as unknown as Record<string, number | null>)[key] = value;
  }
  if (guardrails.confidence === null || !(guardrails.confidence > 0 && guardrails.confidence < 1)) {
    throw badInput(`guardrails.confidence must lie strictly between 0 and 1; got ${guardrails.confidence}`);
  }
  fraction('maxAccuracyDrop', guardrails.maxAccuracyDrop, 0, 1, true);
  fraction('minAgreement', guardrails.minAgreement, 0, 1, true);
  fraction('minOverlapAtK', guardrails.minOverlapAtK, 0, 1, true);
  fraction('minCosine', guardrails.minCosine, -1, 1, true);
  fraction('maxRecallDrop', guardrails.maxRecallDrop, 0, 1, true);
  fraction('maxErrorRate', guardrails.maxErrorRate, 0, 1, true);
  if (guardrails.maxLatencyRatio !== null && !(Number.isFinite(guardrails.maxLatencyRatio) && guardrails.maxLatencyRatio >= 1)) {
    throw badInput(`guardrails.maxLatencyRatio must be a finite number of at least 1; got ${guardrails.maxLatencyRatio}`);
  }
  const shadowPercent = request.shadowPercent ?? DEFAULT_SHADOW_PERCENT;
  if (!(Number.isFinite(shadowPercent) && shadowPercent >= 0 && shadowPercent <= 100)) throw badInput(`shadowPercent must be in 0..100; got ${shadowPercent}`);
  return { steps, guardrails, shadowPercent, requireFeedback: request.requireFeedback ?? false };
}

/**
 * A plan as stored: one written before a guardrail or option existed did not judge it, so a
 * guardrail missing from it reads as off, never as a default it was not started with.
 */
export function storedPlan(plan: RolloutPlan): RolloutPlan {
  const off = Object.fromEntries(Object.keys(DEFAULT_GUARDRAILS).map((key) => [key, null])) as unknown as Guardrails;
  return { ...plan, guardrails: { ...off, ...plan.guardrails }, requireFeedback: plan.requireFeedback ?? false };
}
