/** Round-to-nearest baseline: min/max ranges over the calibration set, no search, no reconstruction. */
import * as tf from '@tensorflow/tfjs';
import { MinMaxObserver } from '../calibration';
import { MethodContext } from './method';

/** Estimated cost of observing one calibration batch on the reference machine (see StageWork). */
const BATCH_SECONDS = 0.2;

export async function roundToNearest(context: MethodContext): Promise<void> {
  const { model, quantized, calibration, onProgress } = context;
  const observer = new MinMaxObserver(quantized);
  const hooks = observer.hooks();
  try {
    for (const [i, batch] of calibration.entries()) {
      tf.tidy(() => {
        model.program.run({ [model.input.name]: batch }, { hooks });
      });
      onProgress({ stage: 'calibrate', done: i + 1, total: calibration.length, work: [{ stage: 'calibrate', done: i + 1, total: calibration.length, unitSeconds: BATCH_SECONDS }] });
      // Yield so progress reporting and job heartbeats run between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    observer.applyTo(quantized);
  } finally {
    observer.dispose();
  }
}
