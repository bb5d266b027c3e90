/** Quantization methods by their CLI/API name. */
import { InputError } from '../../data/errors';
import { QuantizationMethod } from './method';
import { roundToNearest } from './rtn';

export type { LoadedImages, MethodOptions, MethodProgress, MethodReport } from './method';

export type MethodTable = Readonly<Record<string, QuantizationMethod>>;

/**
 * The engine's own methods. Families built on the engine (FIMA-Q) join them above it, in
 * `workers/quantization.ts`, so the engine imports none of them.
 */
export const ENGINE_METHODS: MethodTable = { rtn: roundToNearest };

export function methodFor(methods: MethodTable, name: string): QuantizationMethod {
  const method = methods[name];
  if (!method) throw new InputError(`unknown quantization method "${name}"; available: ${Object.keys(methods).join(', ')}`);
  return method;
}
