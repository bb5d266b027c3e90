import type { GuardrailFigure } from './guardrails';
import type { PairTotals } from './rollout-evidence';
import type { RolloutPlan } from './rollout-plan';

export type RolloutStatus = 'running' | 'paused' | 'promoted' | 'rolled_back' | 'aborted';

export const LIVE_STATUSES: readonly RolloutStatus[] = ['running', 'paused'];

export interface RolloutRecord {
  id: string;
  modelId: string;
  candidateVariantId: string;
  baselineVariantId: string;
  plan: RolloutPlan;
  status: RolloutStatus;
  stepIndex: number;
  stepStartedAt: Date;
  /** The pair's running totals when the step began; the step's evidence is what came since. */
  stepBase: PairTotals;
  looks: number;
  lastLookSamples: number;
  /** Bumped by every change of state; `appliedVersion` is the one whose traffic policy was written. */
  version: number;
  appliedVersion: number;
  reason: string | null;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export type RolloutEventKind = 'started' | 'paused' | 'resumed' | 'aborted' | 'advanced' | 'promoted' | 'rolled_back';

export interface RolloutEvent {
  rolloutId: string;
  seq: number;
  at: Date;
  kind: RolloutEventKind;
  stepIndex: number;
  trafficPercent: number;
  actor: string;
  reason: string;
  /** The guardrail figures behind a decision; empty for a person's action. */
  figures: GuardrailFigure[];
}
