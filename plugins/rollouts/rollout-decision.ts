import { judgeGuardrails, type GuardrailFigure } from './guardrails';
import type { StepEvidence } from './rollout-evidence';
import type { RolloutPlan } from './rollout-plan';

export type Decision = 'advance' | 'promote' | 'hold' | 'rollback';

/** Where the sequence of looks stands: how many were taken and on how many candidate calls the last one was. */
export interface LookState {
  looks: number;
  lastLookSamples: number;
}

export interface StepJudgement {
  decision: Decision;
  reason: string;
  figures: GuardrailFigure[];
  lookState: LookState;
}

/**
 * A look is taken when the candidate's calls in the step reach FIRST_LOOK_SAMPLES, and then each
 * time they have grown by a quarter since the last look: the false-rollback budget is spent per
 * look, so looking on a geometric grid keeps the budget of later looks from shrinking to nothing
 * on a busy model, and no look is spent on a handful of requests.
 */
export const FIRST_LOOK_SAMPLES = 30;
export const LOOK_GROWTH = 1.25;

function describe(f: GuardrailFigure): string {
  // A missing bound is unbounded; a missing estimate has not been observed yet.
  const digits = (x: number | null, missing = '∞') => (x === null ? missing : Number(x.toPrecision(4)).toString());
  return `${f.guardrail} ${digits(f.estimate, 'n/a')} [${digits(f.lower)}, ${digits(f.upper)}] vs ${digits(f.threshold)} on ${f.samples}`;
}

/**
 * The controller's rule for one step: roll back when a guardrail is shown violated; advance
 * (promote after the last step) when every guardrail this step can measure is shown to hold and
 * the step's minimum requests and duration are met; otherwise hold, until the step's
 * maxDurationSeconds (if set) has passed: then roll back, as a candidate not shown fit in time.
 */
export function judgeStep(plan: RolloutPlan, stepIndex: number, evidence: StepEvidence, elapsedSeconds: number, lookState: LookState, classification: boolean): StepJudgement {
  const step = plan.steps[stepIndex];
  const isLook = evidence.candidateCalls >= Math.max(FIRST_LOOK_SAMPLES, lookState.lastLookSamples * LOOK_GROWTH);
  const next = isLook ? { looks: lookState.looks + 1, lastLookSamples: evidence.candidateCalls } : lookState;
  const figures = judgeGuardrails(plan.guardrails, evidence, classification, isLook ? next.looks : undefined, plan.requireFeedback);
  const violated = figures.filter((f) => f.verdict === 'violated');
  if (violated.length > 0) {
    return { decision: 'rollback', reason: `guardrail violated at step ${stepIndex + 1} (${step.trafficPercent} %): ${violated.map(describe).join('; ')}`, figures, lookState: next };
  }
  const pending = figures.filter((f) => f.verdict === 'unknown');
  const waiting: string[] = [];
  if (evidence.requests < step.minRequests) waiting.push(`${evidence.requests}/${step.minRequests} requests`);
  if (elapsedSeconds < step.minDurationSeconds) waiting.push(`${Math.floor(elapsedSeconds)}/${step.minDurationSeconds} s`);
  if (pending.length > 0 || waiting.length > 0) {
    const reasons = [...pending.map((f) => `${describe(f)} not conclusive`), ...waiting];
    const deadline = step.maxDurationSeconds;
    if (deadline !== undefined && deadline !== null && elapsedSeconds >= deadline) {
      return { decision: 'rollback', reason: `step ${stepIndex + 1} (${step.trafficPercent} %) did not pass within its ${deadline} s: ${reasons.join('; ')}`, figures, lookState: next };
    }
    return { decision: 'hold', reason: `holding at step ${stepIndex + 1} (${step.trafficPercent} %): ${reasons.join('; ')}`, figures, lookState: next };
  }
  const shown = figures.filter((f) => f.verdict === 'holds').map(describe).join('; ') || 'no guardrail measurable';
  const last = stepIndex === plan.steps.length - 1;
  return { decision: last ? 'promote' : 'advance', reason: `step ${stepIndex + 1} (${step.trafficPercent} %) passed: ${shown}`, figures, lookState: next };
}
