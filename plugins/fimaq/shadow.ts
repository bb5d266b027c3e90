import type { ModelRecord, Serving, VariantRecord } from '../../gateway/plugin-surface';

/**
 * Starts the live comparison of a new variant against its parent: adds it to the model's
 * traffic policy as a shadow, so users keep the parent's answers while the variant's are
 * compared. Keeps the rest of the policy as it is stored at the moment of the write, so a change
 * made meanwhile (on any replica) is kept too.
 */
export async function addShadow(serving: Serving, model: ModelRecord, variant: VariantRecord, mirrorPercent: number, actor: string): Promise<void> {
  await serving.trafficPolicies.update(
    model.name,
    ({ policy }) => ({ ...policy, shadows: [...policy.shadows.filter((s) => s.variantId !== variant.id), { variantId: variant.id, mirrorPercent }] }),
    { actor },
  );
}
