/**
 * Every quantization method the worker and the `fimaq` CLI offer: the engine's own and FIMA-Q's.
 * Composed here, above both, because FIMA-Q is built on the engine and the engine must not
 * import what is built on it.
 */
import { ENGINE_METHODS, type MethodTable } from './engine/methods';
import { quantizeModel as quantizeWith, type QuantizeOptions, type QuantizeProgress, type QuantizeResult } from './engine/quantize-model';
import { fimaqMethods } from './fimaq/methods';

export const ALL_METHODS: MethodTable = {
  ...ENGINE_METHODS,
  // calib, mse, fisher_diag, fisher_lr, fisher_brecq, fisher_dplr, fimaq
  ...fimaqMethods,
};

export const methodNames: readonly string[] = Object.keys(ALL_METHODS);

/** The engine's quantizeModel, choosing `options.method` among all of the methods above. */
export function quantizeModel(options: QuantizeOptions, onProgress?: (progress: QuantizeProgress) => void): Promise<QuantizeResult> {
  return quantizeWith({ methods: ALL_METHODS, ...options }, onProgress);
}
