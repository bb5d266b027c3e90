/**
 * A stand-in quantization engine with predictable timing (WORKER_ENGINE_MODULE in tests): it
 * reports COPY_ENGINE_STEPS block steps COPY_ENGINE_STEP_MS apart and returns the parent model
 * unchanged, so transport tests control how long a job runs without depending on the engine.
 */
import type { QuantizationEngine } from '../../../workers/jobs/engine';

export const engine: QuantizationEngine = async (request) => {
  const steps = Number(process.env.COPY_ENGINE_STEPS ?? 5);
  const stepMs = Number(process.env.COPY_ENGINE_STEP_MS ?? 100);
  for (let block = 0; block < steps; block++) {
    request.onProgress({ stage: 'copy', block, blocks: steps, progress: (100 * block) / steps, message: `block ${block + 1}/${steps}` });
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  request.onProgress({ stage: 'copy', block: steps, blocks: steps, progress: 100 });
  return { onnx: request.model, config: { engine: 'copy', steps } };
};
