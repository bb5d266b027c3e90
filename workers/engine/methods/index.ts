/** Registry of quantization methods by their CLI/API name. */
import { InputError } from '../../data/errors';
import { QuantizationMethod } from './method';
import { roundToNearest } from './rtn';

export type { MethodContext, MethodOptions, MethodProgress, MethodReport, QuantizationMethod } from './method';

const methods: Record<string, QuantizationMethod> = {
  rtn: roundToNearest,
};

export const methodNames: readonly string[] = Object.keys(methods);

export function methodFor(name: string): QuantizationMethod {
  const method = methods[name];
  if (!method) throw new InputError(`unknown quantization method "${name}"; available: ${methodNames.join(', ')}`);
  return method;
}
