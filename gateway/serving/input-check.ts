import { badInput } from '../errors';
import type { ModelSignature } from '../registry/registry-types';
import { describeNonFinite, firstNonFinite, type Tensor } from '../tensors/tensor';

/**
 * Checks a request against the variant's signature before it queues, so a bad request costs
 * no model time and the caller learns exactly which tensor is wrong. Returns the output names.
 */
export function checkRequest(signature: ModelSignature, inputs: readonly Tensor[], requestedOutputs: readonly string[] | undefined): string[] {
  const expected = signature.inputs.map((t) => t.name);
  const seen = new Set<string>();
  for (const input of inputs) {
    const spec = signature.inputs.find((t) => t.name === input.name);
    if (!spec) throw badInput(`unknown input "${input.name}"; the model takes ${expected.map((n) => `"${n}"`).join(', ')}`);
    if (seen.has(input.name)) throw badInput(`input "${input.name}" is given twice`);
    seen.add(input.name);
    if (input.datatype !== spec.datatype) throw badInput(`input "${input.name}" has datatype ${input.datatype}; the model expects ${spec.datatype}`);
    const fits = input.shape.length === spec.shape.length && spec.shape.every((d, i) => d === -1 || d === input.shape[i]);
    if (!fits) throw badInput(`input "${input.name}" has shape [${input.shape.join(', ')}]; the model expects [${spec.shape.join(', ')}] (-1: any size)`);
    const nonFinite = firstNonFinite(input);
    if (nonFinite) {
      const range = input.datatype === 'FP32' ? ' (FP32 holds magnitudes up to 3.4028235e38; larger JSON numbers overflow to Infinity)' : '';
      throw badInput(`input "${input.name}": ${describeNonFinite(input, nonFinite)}; inputs must be finite numbers${range}`);
    }
  }
  const missing = expected.filter((name) => !seen.has(name));
  if (missing.length > 0) throw badInput(`missing input(s) ${missing.map((n) => `"${n}"`).join(', ')}`);
  const rows = new Set(inputs.map((t) => t.shape[0]));
  if (rows.size > 1) throw badInput(`inputs disagree on the batch size (first dimension): ${[...rows].join(' vs ')}`);
  if (inputs.some((t) => t.shape[0] === 0)) throw badInput('the batch is empty (first dimension 0)');

  const available = signature.outputs.map((t) => t.name);
  if (!requestedOutputs || requestedOutputs.length === 0) return available;
  for (const name of requestedOutputs) {
    if (!available.includes(name)) throw badInput(`unknown output "${name}"; the model has ${available.map((n) => `"${n}"`).join(', ')}`);
  }
  return [...new Set(requestedOutputs)];
}
