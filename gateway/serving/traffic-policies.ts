import { badInput, conflict } from '../errors';
import type { ModelServingState, ServingCatalog } from './serving-catalog';
import { validatePolicy, type TrafficPolicy } from './traffic-policy';
import type { TrafficPolicyRepository } from './traffic-policy-repository';

/**
 * The policy a change wants, computed from the model's state as stored (policy, version,
 * variants). It may run more than once when a concurrent writer wins a race, so it must only
 * compute; throwing (for example a bad-input error) abandons the update with nothing written.
 */
export type PolicyChange = (current: ModelServingState) => TrafficPolicy;

export interface PolicyUpdateOptions {
  /** Who makes the change, for the audit log. */
  actor: string;
  /**
   * The version the caller saw when it decided on the change. When given, a policy that is no
   * longer at this version fails with CONFLICT instead of being retried: the caller has to look
   * again. Without it the change is re-applied to whatever is stored.
   */
  expectedVersion?: number;
}

/**
 * How often a change that is a function of the current policy is re-applied after losing a
 * race; each lost race means another change committed, so this only runs out under a storm.
 */
export const MAX_POLICY_UPDATE_ATTEMPTS = 5;

/**
 * Changes traffic policies as atomic read-modify-writes: read the stored row (never the
 * cache), apply the change, and write only if the version is still the one read, with the
 * audit entry in the same transaction. Replicas and plugins all write through here.
 */
export class TrafficPolicies {
  constructor(
    private readonly catalog: ServingCatalog,
    private readonly repository: TrafficPolicyRepository,
  ) {}

  /** Applies `change` to the model's stored policy; returns the state as written. */
  async update(modelName: string, change: PolicyChange, options: PolicyUpdateOptions): Promise<ModelServingState> {
    const { actor, expectedVersion } = options;
    if (expectedVersion !== undefined && !(Number.isInteger(expectedVersion) && expectedVersion >= 0)) {
      throw badInput(`expectedVersion must be a non-negative integer; got ${expectedVersion}`);
    }
    const attempts = expectedVersion === undefined ? MAX_POLICY_UPDATE_ATTEMPTS : 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const current = await this.catalog.read(modelName);
      if (expectedVersion !== undefined && current.policyVersion !== expectedVersion) break;
      const policy = change(current);
      validatePolicy(policy, current.variants, current.model.name);
      const written = await this.repository.compareAndSet(current.model.id, current.policyVersion, policy, actor);
      if (written) {
        this.catalog.changed(current.model.id);
        return { ...current, policy, policyVersion: written.version, policyUpdatedBy: actor, policyUpdatedAt: written.updatedAt };
      }
    }
    throw expectedVersion === undefined
      ? conflict(`the traffic policy of model ${modelName} changed ${attempts} times while this change was applied; try again`)
      : conflict(`the traffic policy of model ${modelName} is no longer version ${expectedVersion}; read it again and reapply the change to the current version`);
  }
}
