/**
 * What the KL of the Fisher losses compares: a classifier's logits, or for an embedding model
 * z = τ·cos(e, R) against a fixed reference set R (docs/fimaq.md, retrieval models).
 */
import * as tf from '@tensorflow/tfjs';
import { Tape } from '../engine/autodiff/tape';

/** Maps the model's output ([B, D]) to logits ([B, K]); differentiable. */
export interface LogitsFunction {
  (output: tf.Tensor): tf.Tensor;
  /** The same map recorded on a training graph's tape, from `output` of shape [B, D]. */
  graphForm(tape: Tape, output: string, shape: readonly number[]): { logits: string; classes: number };
}

export const classificationLogits: LogitsFunction = Object.assign((output: tf.Tensor) => output, {
  graphForm: (_: Tape, output: string, shape: readonly number[]) => ({ logits: output, classes: shape[shape.length - 1] }),
});

/** Keeps the L2-normalized reference rows; call dispose on the returned handle's `reference` when done. */
export function retrievalLogits(reference: tf.Tensor, scale: number): { logits: LogitsFunction; reference: tf.Tensor } {
  const normalizedReference = tf.tidy(() => l2Normalize(reference));
  const [classes, width] = normalizedReference.shape;
  const logits = Object.assign((output: tf.Tensor) => tf.tidy(() => tf.mul(tf.matMul(l2Normalize(output), normalizedReference, false, true), scale)), {
    graphForm(tape: Tape, output: string, shape: readonly number[]) {
      const rows = shape[0];
      const { b } = tape;
      const norm = tape.op('Sqrt', [tape.op('ReduceSum', [tape.op('Mul', [output, output], shape), tape.int64s('axes', [-1])], [rows, 1], { keepdims: 1 })], [rows, 1]);
      const normalized = tape.op('Div', [output, tape.op('Max', [norm, b.scalar(1e-12)], [rows, 1])], shape);
      const transposed = tf.transpose(normalizedReference);
      const referenceT = b.floats('reference_t', [width, classes], transposed.dataSync());
      transposed.dispose();
      return { logits: tape.op('Mul', [tape.op('MatMul', [normalized, referenceT], [rows, classes]), b.scalar(scale)], [rows, classes]), classes };
    },
  });
  return { reference: normalizedReference, logits };
}

export function l2Normalize(rows: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(rows, tf.maximum(tf.norm(rows, 2, -1, true), 1e-12)));
}
