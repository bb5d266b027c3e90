/** Registry of quantization methods by their CLI/API name. */
import { InputError } from '../../data/errors';
import { QuantizationMethod } from './method';
import { roundToNearest } from './rtn';
import { fimaqMethods } from '../../fimaq/methods';

export type { LoadedImages, MethodOptions, MethodProgress, MethodReport } from './method';

const methods: Record<string, QuantizationMethod> = {
  rtn: roundToNearest,
  // calib, mse, fisher_diag, fisher_lr, fisher_brecq, fisher_dplr, fimaq
  ...fimaqMethods,
};

export const methodNames: readonly string[] = Object.keys(methods);

export function methodFor(name: string): QuantizationMethod {
  const method = methods[name];
  if (!method) throw new InputError(`unknown quantization method "${name}"; available: ${methodNames.join(', ')}`);
  return method;
}
