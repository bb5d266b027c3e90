import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { describeNonFinite, firstNonFinite, type Tensor } from '../tensors/tensor';
import type { BatchingOptions } from './batching';
import type { ModelServingState } from './serving-catalog';
import { VariantFailedError } from './serving-errors';
import type { Lane, VariantSessions } from './variant-sessions';

/**
 * Runs a variant on checked inputs in the lane's session (primary or shadow), with the model's
 * batching, and checks what comes back: the one way anything in the data plane runs a model.
 */
export class VariantExecutor {
  constructor(
    private readonly sessions: VariantSessions,
    private readonly defaultBatching: BatchingOptions,
  ) {}

  /** Loads the variant's primary session (readiness probes warm a replica this way). */
  async load(model: ModelRecord, variant: VariantRecord): Promise<void> {
    await this.sessions.runner(model, variant);
  }

  /** False while the variant's session has failed: routing skips it. */
  canServe(variantId: string): boolean {
    return !this.sessions.hasFailed(variantId);
  }

  async run(state: ModelServingState, variant: VariantRecord, inputs: Tensor[], outputNames: string[], lane: Lane): Promise<Tensor[]> {
    const runner = await this.sessions.runner(state.model, variant, lane);
    runner.useBatching(state.policy.batching ?? this.defaultBatching);
    const { outputs } = await runner.submit(inputs, outputNames);
    // Inputs are checked finite before they queue, so a NaN or Infinity here is the variant's
    // fault: it fails the request and counts against that variant, never reaching a caller as null.
    for (const output of outputs) {
      const nonFinite = firstNonFinite(output);
      if (nonFinite) {
        throw new VariantFailedError(`variant ${state.model.name}/${variant.tag} produced a non-finite output from finite inputs: "${output.name}" ${describeNonFinite(output, nonFinite)}`);
      }
    }
    return outputs;
  }
}
