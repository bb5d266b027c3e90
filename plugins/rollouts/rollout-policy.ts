import type { TrafficPolicy } from '../../gateway/plugin-surface';
import type { RolloutRecord } from './rollout-record';

/**
 * The traffic policy a rollout wants, from the model's current one. During a step the baseline
 * answers (100 − p) % and the candidate p %, and each shadows the other's answers (all of them by
 * default, `shadowPercent`), so every request yields a comparison and, with feedback, a paired outcome (agreement and McNemar need
 * both variants on the same rows; the shadows run in the niced shadow lane and are dropped, never
 * queued, when it is full). After the rollout only the winner is routed and neither is a shadow.
 * Routes of other variants give way to the rollout; other shadows, stickiness and batching stay.
 */
export function rolloutPolicy(rollout: RolloutRecord, current: TrafficPolicy): TrafficPolicy {
  const { candidateVariantId: candidate, baselineVariantId: baseline } = rollout;
  const shadows = current.shadows.filter((s) => s.variantId !== candidate && s.variantId !== baseline);
  switch (rollout.status) {
    case 'running':
    case 'paused': {
      const percent = rollout.plan.steps[rollout.stepIndex].trafficPercent;
      return {
        ...current,
        routes: [
          { variantId: baseline, weight: 100 - percent },
          { variantId: candidate, weight: percent },
        ],
        shadows: [...shadows, { variantId: candidate, mirrorPercent: rollout.plan.shadowPercent }, { variantId: baseline, mirrorPercent: rollout.plan.shadowPercent }],
      };
    }
    case 'promoted':
      return { ...current, routes: [{ variantId: candidate, weight: 1 }], shadows };
    case 'rolled_back':
    case 'aborted':
      return { ...current, routes: [{ variantId: baseline, weight: 1 }], shadows };
  }
}
