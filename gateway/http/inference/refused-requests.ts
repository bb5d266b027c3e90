import type { Serving } from '../../serving/serving';
import { errorResponse } from '../errors-middleware';

/**
 * Counts a request the serving layer never saw (refused while reading or decoding it) so that
 * no failure is missing from the metrics: under its model when the model exists, else under "-".
 * Errors the serving layer raised are already counted and are left alone.
 */
export function countRefusedRequest(serving: Serving, modelName: string, error: unknown): void {
  if (serving.metrics.isCounted(error)) return;
  const { status } = errorResponse(error);
  serving.catalog.get(modelName).then(
    () => serving.metrics.failed({ modelName }, 'primary', status),
    () => serving.metrics.failed(undefined, 'primary', status),
  );
}
