/**
 * What the KL of the Fisher losses compares: a classifier's logits, or for an embedding model
 * z = τ·cos(e, R) against a fixed reference set R (FIMAQ.md, retrieval models).
 */
import * as tf from '@tensorflow/tfjs';

/** Maps the model's output ([B, D]) to logits ([B, K]); differentiable. */
export type LogitsFunction = (output: tf.Tensor) => tf.Tensor;

export const classificationLogits: LogitsFunction = (output) => output;

/** Keeps the L2-normalized reference rows; call dispose on the returned handle's `reference` when done. */
export function retrievalLogits(reference: tf.Tensor, scale: number): { logits: LogitsFunction; reference: tf.Tensor } {
  const normalizedReference = tf.tidy(() => l2Normalize(reference));
  return {
    reference: normalizedReference,
    logits: (output) => tf.tidy(() => tf.mul(tf.matMul(l2Normalize(output), normalizedReference, false, true), scale)),
  };
}

export function l2Normalize(rows: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(rows, tf.maximum(tf.norm(rows, 2, -1, true), 1e-12)));
}
